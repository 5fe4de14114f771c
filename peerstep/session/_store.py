"""A chat session on disk: one JSON file per session, replaced atomically after every change.

A session is a list of turns; each turn is one run (its own step log and checkpoints, in the runs directory,
with ``session`` and ``turn`` in its meta). The session file holds what the next turn needs without opening
those runs: the conversation the model saw (the adopted trajectory's messages), the Python cells whose state
the sandbox must hold, the strategy and the approval policy. It is written before a turn starts (status
``running``) and after it ends, by write-then-rename, so a SIGKILL leaves either the old file or the new one, never
half of one; a turn still ``running`` when a session is loaded was cut off by a crash. No fsync, as for the step log
(SQLite, synchronous=NORMAL): what a killed process wrote survives it; only an OS crash or power cut can lose the
last save (the session then resumes from the one before). An fsync per save cost 2 ms a turn before the first token.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from peerstep._errors import InputError
from peerstep.steplog._store import runs_dir

SESSION_FORMAT = 1
TurnStatus = Literal["running", "done", "error", "interrupted", "lost", "undone"]


class Cell(BaseModel):
    """A Python cell a turn ran in the adopted trajectory's sandbox: replayed to rebuild the session's state."""

    code: str
    output: str = ""


class Turn(BaseModel):
    index: int
    question: str
    status: TurnStatus = "running"
    run_id: str | None = None
    strategy: str = "single"
    n: int = 1
    answer: str | None = None
    error: str | None = None
    partial: str = Field(default="", description="the reply streamed so far when the turn was interrupted")
    trajectory: int = Field(default=0, description="the trajectory whose conversation and cells the session keeps")
    messages: list[dict[str, Any]] = Field(
        default_factory=list, description="the turn as the model saw it, the question first (its history)")
    cells: list[Cell] = Field(default_factory=list)
    workspace: str = Field(default="", description="the names the sandbox held after the turn, for the next one")
    tokens: int = 0
    steps: int = 0
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None


class SessionRecord(BaseModel):
    format: int = SESSION_FORMAT
    id: str
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    model: str | None = None
    base_url: str | None = None
    engine: str | None = None
    strategy: str = "single"
    n: int = 4
    approve: dict[str, Any] = Field(default_factory=dict, description="the approval policy (ApprovalPolicy dump)")
    agent: dict[str, Any] = Field(default_factory=dict, description="the AgentConfig the turns run with")
    turns: list[Turn] = Field(default_factory=list)

    @property
    def kept(self) -> list[Turn]:
        """Turns whose conversation and cells carry over (not a lost turn: it never ended; not an undone one)."""
        return [t for t in self.turns if t.status not in ("lost", "undone")]

    def cells(self) -> list[Cell]:
        return [c for t in self.kept for c in t.cells]


def sessions_dir(directory: Path | None = None) -> Path:
    """Where session files live: ``sessions/`` under the runs directory (``$PEERSTEP_RUNS``)."""
    return (directory or runs_dir()) / "sessions"


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def save(record: SessionRecord, directory: Path | None = None) -> Path:
    """Write the session file atomically (temp file, rename): a kill leaves the old or the new file."""
    folder = sessions_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    record.updated_at = time.time()
    path = folder / f"{record.id}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{record.id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(record.model_dump_json(indent=1))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(session_id: str | None, directory: Path | None = None) -> SessionRecord:
    """A session by id (or a unique prefix of one); ``None`` or ``"last"`` is the one used last.

    A session that is not there, or whose file cannot be read back, is an ``InputError`` saying which and why.
    """
    folder = sessions_dir(directory)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if session_id in (None, "", "last"):
        if not files:
            raise InputError(f"there is no session to resume in {folder}; start one with `peerstep chat`")
        path = max(files, key=lambda p: p.stat().st_mtime)
    else:
        assert session_id is not None
        matches = [p for p in files if p.stem == session_id] or [p for p in files if p.stem.startswith(session_id)]
        if not matches:
            raise InputError(f"no session {session_id!r} in {folder}; `peerstep sessions` lists them")
        if len(matches) > 1:
            raise InputError(f"{session_id!r} names {len(matches)} sessions ({', '.join(p.stem for p in matches)});"
                             " give more of the id")
        path = matches[0]
    return read(path)


def read(path: Path) -> SessionRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = SessionRecord.model_validate(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"session file {path} is corrupt or unreadable ({first}); it cannot be resumed") from exc
    if record.format != SESSION_FORMAT:
        raise InputError(f"session file {path} is in format {record.format}; this peerstep reads {SESSION_FORMAT}")
    return record


def list_sessions(directory: Path | None = None) -> list[SessionRecord | tuple[Path, str]]:
    """Every session, newest first; a file that cannot be read is listed as (path, why), not skipped."""
    folder = sessions_dir(directory)
    out: list[SessionRecord | tuple[Path, str]] = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) \
            if folder.is_dir() else []:
        try:
            out.append(read(path))
        except InputError as exc:
            out.append((path, str(exc)))
    return out
