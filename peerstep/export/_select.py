"""Which runs an export covers: run ids given by the user, or every episode's run of an eval."""

from __future__ import annotations

from pathlib import Path

from peerstep._errors import InputError
from peerstep.evals import load_eval


def select_runs(run_ids: list[str], eval_path: Path | None) -> list[str]:
    """Run ids to export, in order, without duplicates.

    ``eval_path`` is an eval's ``OUT.json`` (or its per-episode ``.jsonl``); each outcome names its run. A path
    that is missing or not an eval report is an :class:`InputError` naming it, so the command fails with one line.
    """
    found: list[str] = list(run_ids)
    if eval_path is not None:
        found.extend(outcome_run_ids(eval_path))
    if not found:
        raise InputError("nothing to export: give run ids or --eval OUT.json")
    return list(dict.fromkeys(found))


def outcome_run_ids(eval_path: Path) -> list[str]:
    """The run id of every episode of an eval report (``.json``) or per-episode file (``.jsonl``)."""
    _, outcomes = load_eval(eval_path)
    return [o.run_id for o in outcomes if o.run_id]
