"""Append-only step store: one SQLite file per run, in WAL mode.

Why SQLite rather than JSONL: several trajectories (and later several processes, e.g. an
eval runner) append to the same run concurrently, and readers (``peerstep show``, exporters)
query by trajectory and kind. WAL gives atomic appends, concurrent readers and a file that
stays consistent when the writer is killed: every committed transaction is in the WAL file
in the OS page cache, so SIGKILL loses nothing that was committed (only a power loss could,
with ``synchronous=NORMAL``). Each record is committed on its own, as it happens.

Records live outside the graph state on purpose: a log in state would be copied into every
checkpoint.

A run records who writes it (``pid``, the process's start time, the host) with ``status: running``. A run killed
before it could say how it ended (SIGKILL, the OOM killer, a power cut) is marked ``interrupted`` the next time it
is opened or listed on the same host and its process is gone, instead of reading "running" forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from peerstep._errors import PeerstepError
from peerstep._paths import cache_dir
from peerstep.steplog._records import StepKind, StepRecord, new_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    step_id TEXT NOT NULL UNIQUE,
    episode_id TEXT NOT NULL,
    trajectory_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_by_traj ON steps (episode_id, trajectory_id, seq);
CREATE TABLE IF NOT EXISTS superseded (
    seq INTEGER PRIMARY KEY,
    step_id TEXT NOT NULL UNIQUE,
    episode_id TEXT NOT NULL,
    trajectory_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL,
    superseded_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


_SQLITE_FULL = 13


class StepLogError(PeerstepError):
    """The step log could not be written (full disk, read-only directory, …)."""


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22), or None if unknown.

    With the pid it identifies a process for good: a pid reused by a later process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _process_gone(pid: int, started: int | None) -> bool:
    """True if the process that wrote a run has ended (a zombie has ended; a reused pid is another process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc to ask: it exists, so assume it is the writer
    if state in ("Z", "X"):
        return True
    return started is not None and _process_start(pid) not in (None, started)


def runs_dir() -> Path:
    """Where run files go: ``$PEERSTEP_RUNS`` or ``<cache>/runs``."""
    import os

    env = os.environ.get("PEERSTEP_RUNS")
    return Path(env).expanduser() if env else cache_dir() / "runs"


@dataclass(frozen=True)
class StepRow:
    """One stored row as read, valid or not: what a tolerant reader (the trace viewer) shows.

    ``record`` is None when the ``record`` column is not valid JSON or not a valid StepRecord; ``error`` then says
    why, and ``raw`` keeps the text, so a reader can show the bad row and go on with the rest."""

    seq: int
    trajectory_id: int
    kind: str
    raw: str
    record: StepRecord | None
    error: str | None = None


class RunSummary(BaseModel):
    run_id: str
    path: Path
    created_at: float
    meta: dict[str, Any]
    steps: int


class StepLog:
    """Writer and reader for one run's records. Thread-safe; cheap to call from async code."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StepLogError(f"cannot open step log {path}: {exc}") from exc

    @classmethod
    def create(cls, meta: dict[str, Any] | None = None, directory: Path | None = None,
               run_id: str | None = None) -> StepLog:
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + new_id()[:6]
        log = cls((directory or runs_dir()) / f"{run_id}.sqlite", run_id)
        pid = os.getpid()
        log.set_meta({"run_id": run_id, "created_at": time.time(), "status": "running", "pid": pid,
                      "pid_started": _process_start(pid), "host": socket.gethostname(), **(meta or {})})
        return log

    @classmethod
    def open(cls, run: str, directory: Path | None = None) -> StepLog:
        """Open an existing run by id, file path, or unique id prefix."""
        candidate = Path(run)
        if candidate.suffix == ".sqlite" and candidate.exists():
            log = cls(candidate, candidate.stem)
            log.settle_status()
            return log
        base = directory or runs_dir()
        matches = sorted(base.glob(f"{run}*.sqlite"))
        if not matches:
            raise StepLogError(f"no run {run!r} in {base}; `peerstep runs` lists them")
        if len(matches) > 1:
            raise StepLogError(f"run id {run!r} is ambiguous: {', '.join(m.stem for m in matches[:5])}")
        log = cls(matches[0], matches[0].stem)
        log.settle_status()
        return log

    def set_meta(self, values: dict[str, Any]) -> None:
        rows = [(k, json.dumps(v, default=str)) for k, v in values.items()]
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)

    def meta(self) -> dict[str, Any]:
        with self._lock:
            return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def settle_status(self) -> dict[str, Any]:
        """The run's meta, after turning ``status: running`` into ``interrupted`` if its writer is gone.

        Only a run written on this host can be judged (a pid means nothing elsewhere). The new status is saved
        when the file is writable; when it is not, it is still what this call returns.
        """
        meta = self.meta()
        pid = meta.get("pid")
        if meta.get("status") != "running" or not isinstance(pid, int) or meta.get("host") != socket.gethostname():
            return meta
        started = meta.get("pid_started")
        if not _process_gone(pid, started if isinstance(started, int) else None):
            return meta
        update = {"status": "interrupted",
                  "status_reason": f"its process {pid} ended without recording how the run ended (killed?)"}
        meta.update(update)
        # a read-only copy of a run is still reported as interrupted; it just cannot be saved
        with contextlib.suppress(StepLogError):
            self.set_meta(update)
        return meta

    def append(self, record: StepRecord) -> StepRecord:
        """Commit one record now. Raises StepLogError with the cause if the disk refuses it."""
        row = (record.step_id, record.episode_id, record.trajectory_id, record.kind.value, record.created_at,
               record.model_dump_json(exclude_none=True))
        self._write("INSERT INTO steps (step_id, episode_id, trajectory_id, kind, created_at, record) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [row])
        return record

    def log(self, kind: StepKind, **fields: Any) -> StepRecord:
        return self.append(StepRecord(run_id=self.run_id, kind=kind, **fields))

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(sql, rows)
                    self._db.execute("COMMIT")
                except BaseException as exc:
                    # SQLite rolls back by itself on some errors (SQLITE_FULL among them): a second ROLLBACK would
                    # fail with "no transaction is active" and that message would replace the real cause
                    if self._db.in_transaction:
                        try:
                            self._db.execute("ROLLBACK")
                        except sqlite3.Error as rollback:
                            exc.add_note(f"rolling back the step log also failed: {rollback}")
                    raise
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "full" in str(exc):
                raise StepLogError(
                    f"cannot write to step log {self.path}: the disk is full ({exc}); every step written before "
                    f"is kept and readable; free space on {self.path.parent} (or set PEERSTEP_RUNS elsewhere)"
                ) from exc
            raise StepLogError(f"cannot write to step log {self.path}: {exc}") from exc

    def records(self, trajectory_id: int | None = None, kind: StepKind | None = None) -> Iterator[StepRecord]:
        sql = "SELECT record FROM steps WHERE 1=1"
        args: list[object] = []
        if trajectory_id is not None:
            sql += " AND trajectory_id = ?"
            args.append(trajectory_id)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        for (raw,) in rows:
            yield StepRecord.model_validate_json(raw)

    def rows(self, after: int = 0) -> Iterator[StepRow]:
        """Every row after sequence number ``after``, in order, without failing on a corrupt one.

        ``records()`` raises on the first row it cannot validate, which is right for code that builds on the
        records; a viewer must instead show what is there, so each row comes back with its error. ``after`` lets a
        live reader fetch only the rows written since it last looked."""
        with self._lock:
            found = self._db.execute("SELECT seq, trajectory_id, kind, record FROM steps WHERE seq > ? ORDER BY seq",
                                     (after,)).fetchall()
        for seq, tid, kind, raw in found:
            try:
                yield StepRow(int(seq), int(tid), str(kind), raw, StepRecord.model_validate_json(raw))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError, as is bad JSON
                first = str(exc).splitlines()
                yield StepRow(int(seq), int(tid), str(kind), str(raw), None,
                              " ".join(line.strip() for line in first[:3]))

    def supersede(self, step_ids: list[str], reason: str) -> int:
        """Move steps out of the log into the ``superseded`` table, in one transaction; returns how many moved.

        A run killed mid-node has written steps its checkpoint does not know about; resumed, the node runs again
        and writes them anew. The first attempt's steps are kept on disk (``superseded()`` reads them) but leave
        the log, so no step appears twice and every step left is one the run built on.
        """
        if not step_ids:
            return 0
        marks = ",".join("?" * len(step_ids))
        now = time.time()
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT INTO superseded (seq, step_id, episode_id, trajectory_id, kind, created_at, record, "
                        f"superseded_at, reason) SELECT seq, step_id, episode_id, trajectory_id, kind, created_at, "
                        f"record, ?, ? FROM steps WHERE step_id IN ({marks})", [now, reason, *step_ids])
                    moved = self._db.execute(f"DELETE FROM steps WHERE step_id IN ({marks})", step_ids).rowcount
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StepLogError(f"cannot write to step log {self.path}: {exc}") from exc
        return int(moved)

    def superseded(self) -> Iterator[tuple[StepRecord, str]]:
        """Steps a resumed run superseded, with the reason, in the order they were first written."""
        with self._lock:
            rows = self._db.execute("SELECT record, reason FROM superseded ORDER BY seq").fetchall()
        for raw, reason in rows:
            yield StepRecord.model_validate_json(raw), reason

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM steps").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_runs(directory: Path | None = None) -> list[RunSummary]:
    """Every run in ``directory``, newest first. Unreadable files are reported, not skipped silently."""
    base = directory or runs_dir()
    out: list[RunSummary] = []
    for path in sorted(base.glob("*.sqlite"), reverse=True):
        try:
            with StepLog(path, path.stem) as log:
                meta = log.settle_status()
                out.append(RunSummary(run_id=path.stem, path=path, created_at=float(meta.get("created_at", 0)),
                                      meta=meta, steps=log.count()))
        except (StepLogError, sqlite3.Error) as exc:
            out.append(RunSummary(run_id=path.stem, path=path, created_at=0, meta={"error": str(exc)}, steps=0))
    return out
