"""Read an eval's output back: the one reader behind ``report`` and the ``--eval`` of ``view``, ``export``, ``label``.

``peerstep eval --out OUT.json`` writes the report (``OUT.json``) and, episode by episode, ``OUT.jsonl``. Every
command that takes an eval reads it here, so a file is accepted or refused the same way, with the same one-line
reason, wherever it is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from peerstep._errors import InputError
from peerstep.evals._report import EpisodeOutcome, EvalReport

_HINT = "give the OUT.json of `peerstep eval --out OUT.json`"


def load_eval(path: Path, *, report_only: bool = False,
              torn_tail: bool = False) -> tuple[EvalReport | None, list[EpisodeOutcome]]:
    """The report of ``OUT.json`` and its outcomes, or (``None``, outcomes) for an ``OUT.jsonl``.

    ``report_only`` refuses a ``.jsonl``, for callers that need the report's dataset, seed and limit.
    ``torn_tail`` drops an unreadable last line of a ``.jsonl`` (the line being written when an eval was
    killed: ``--resume`` reruns that episode) instead of refusing the file.
    Anything unreadable or malformed is an :class:`InputError` naming the file and the first problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"cannot read eval report {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read eval report {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix == ".jsonl":
        if report_only:
            raise InputError(f"{path}: per-episode results carry no dataset or seed; {_HINT}")
        return None, _outcome_lines(path, text, torn_tail)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not an eval report (not JSON: {exc.msg} at line {exc.lineno}); {_HINT}") from None
    try:
        report = EvalReport.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: not an eval report ({_first_error(exc)}); {_HINT}") from None
    return report, report.outcomes


def _outcome_lines(path: Path, text: str, torn_tail: bool) -> list[EpisodeOutcome]:
    outcomes = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            outcomes.append(EpisodeOutcome.model_validate_json(line))
        except ValidationError as exc:
            if torn_tail and number == len(lines):
                break
            raise InputError(f"{path} line {number}: not an episode result ({_first_error(exc)}); {_HINT}") from None
    return outcomes


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "top level"
    return f"{where}: {first['msg']}"
