"""``peerstep export --format inspect``: runs and evals as Inspect AI logs, for ``inspect view``.

An eval (``--eval OUT.json``) becomes one log per strategy -- Inspect's unit is one task on one model with one
solver, and a peerstep eval is one dataset on one model under several strategies -- with one sample per episode,
graded as the eval report graded it, so the log's accuracy is the report's. Run ids become one log with one
sample per run. How trajectories map onto a sample: see :mod:`peerstep.export._inspect_sample`.

Logs are written with ``inspect_ai.log.write_eval_log``; by default into ``./logs``, where ``inspect view`` looks.
File names are stable (the runs decide them), so exporting again replaces the same file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peerstep._errors import InputError, PeerstepError
from peerstep.evals import EpisodeOutcome, load_eval
from peerstep.registry import strategy_label

if TYPE_CHECKING:
    from peerstep.export._inspect_log import LogSpec
    from peerstep.export._inspect_sample import RunSample

INSTALL_HINT = "Inspect AI is not installed: pip install 'peerstep[inspect]'"
DEFAULT_DIR = Path("logs")


@dataclass
class _Episode:
    run_id: str
    sample_id: str | int
    outcome: EpisodeOutcome | None = None


def _plans(run_ids: list[str], eval_path: Path | None) -> list[tuple[LogSpec, list[_Episode]]]:
    from peerstep.export._inspect_log import LogSpec

    plans: list[tuple[LogSpec, list[_Episode]]] = []
    covered: set[str] = set()
    if eval_path is not None:
        report, outcomes = load_eval(eval_path)
        if not outcomes:
            raise InputError(f"{eval_path} has no episodes to export")
        by_strategy: dict[str, list[EpisodeOutcome]] = {}
        for o in outcomes:
            by_strategy.setdefault(o.strategy, []).append(o)
        dataset = report.dataset if report else None
        for strategy, mine in by_strategy.items():
            mine.sort(key=lambda o: o.index)
            ids = [o.task_id for o in mine]
            unique = len(set(ids)) == len(ids)
            episodes = [_Episode(o.run_id, o.task_id if unique else f"{o.task_id}#{o.index}", o) for o in mine]
            summary = next((s for s in report.summaries if s.strategy == strategy), None) if report else None
            extra = {"eval_report": str(eval_path), "eval_model": report.model if report else None,
                     "eval_summary": summary.model_dump() if summary else None}
            # without a report (a .jsonl) the dataset is read from the runs (below)
            spec = LogSpec(task=f"{dataset}/{strategy_label(strategy, mine[0].n)}" if dataset else "", dataset=dataset,
                           seed=report.seed if report else None, limit=report.limit if report else None,
                           interrupted=bool(report and (report.interrupted or report.aborted)), metadata=extra)
            plans.append((spec, episodes))
            covered.update(o.run_id for o in mine)
    rest = [r for r in dict.fromkeys(run_ids) if r not in covered]
    if rest:
        plans.append((LogSpec(task=""), [_Episode(r, r) for r in rest]))
    if not plans:
        raise InputError("nothing to export: give run ids or --eval OUT.json")
    return plans


def _convert(episode: _Episode, directory: Path | None) -> RunSample:
    from peerstep.export._inspect_sample import run_sample, unrecorded_sample
    from peerstep.steplog import StepLog

    if not episode.run_id:  # the episode failed before its run was recorded: the outcome is all there is
        assert episode.outcome is not None
        return unrecorded_sample(episode.outcome, episode.sample_id)
    with StepLog.open(episode.run_id, directory) as log:
        return run_sample(log, episode.sample_id, episode.outcome)


def _runs_task(runs: list[RunSample]) -> str:
    metas = [r.meta for r in runs if r.started is not None] or [r.meta for r in runs]
    datasets = {m.get("dataset") for m in metas}
    labels = {strategy_label(m.get("strategy"), m.get("n")) for m in metas}
    dataset = next(iter(datasets)) if len(datasets) == 1 and None not in datasets else "peerstep"
    return f"{dataset}/{next(iter(labels)) if len(labels) == 1 else 'mixed'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "peerstep"


def export_inspect(run_ids: list[str], out: Path | None, directory: Path | None = None,
                   eval_path: Path | None = None) -> list[Path]:
    """Write the Inspect logs of the runs (or of an eval's episodes); returns the files written.

    ``out`` is a directory (default ``./logs``) or, when one log results, a ``.eval``/``.json`` file.
    """
    if importlib.util.find_spec("inspect_ai") is None:
        raise PeerstepError(INSTALL_HINT)
    from inspect_ai.log import write_eval_log

    from peerstep.export._inspect_log import build_log

    plans = _plans(run_ids, eval_path)
    target = out or DEFAULT_DIR
    as_file = target.suffix in (".eval", ".json")
    if as_file and len(plans) > 1:
        raise InputError(f"this export makes {len(plans)} logs (one per strategy): give --out a directory, "
                         f"not {target}")
    written: list[Path] = []
    for spec, episodes in plans:
        runs = [_convert(e, directory) for e in episodes]
        spec.task = spec.task or _runs_task(runs)
        spec.dataset = spec.dataset or spec.task.split("/")[0]
        digest = hashlib.sha256(" ".join([spec.task, *(e.run_id or str(e.sample_id) for e in episodes)])
                                .encode()).hexdigest()[:22]
        log = build_log(runs, spec, digest)
        if as_file:
            path = target
        else:
            stamp = log.eval.created[:19].replace(":", "-")
            path = target / f"{stamp}+00-00_{_slug(spec.task)}_{digest}.eval"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_eval_log(log, str(path))
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(path)
    return written
