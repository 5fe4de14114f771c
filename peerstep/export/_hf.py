"""Process-supervision rows as a Hugging Face ``datasets`` directory (``Dataset.save_to_disk``).

The rows are the JSONL export's (``peerstep.export._prm``); a directory saves the consumer a JSON parse and an
Arrow schema guess, and ``datasets.load_from_disk(DIR)`` gives them back. The schema is written out where guessing
would be wrong or fragile:

- ``trl-prm``: ``prompt: string``, ``completions: list<string>``, ``labels: list<bool>`` (what TRL's PRM trainer
  reads; a guess from an empty list would be ``null``);
- ``math-shepherd``: three strings;
- ``prm800k``: inferred from the rows (nested, and every row has the same keys);
- ``openai-chat``: ``messages`` is a list of one struct with every key a message can have (``role``, ``content``,
  ``weight``, ``tool_calls``, ``tool_call_id``): Arrow has no per-row shapes, so a key a message does not have
  comes back as ``None``. ``tools`` is the JSON text of the tools list, because a tool's JSON schema has no fixed
  shape; TRL's ``SFTTrainer`` reads ``tools`` given as a JSON string.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from peerstep._errors import InputError


def _features(fmt: str) -> Any:
    from datasets import Features, Sequence, Value

    string = Value("string")
    if fmt == "trl-prm":
        return Features({"prompt": string, "completions": Sequence(string), "labels": Sequence(Value("bool"))})
    if fmt == "math-shepherd":
        return Features({"input": string, "label": string, "task": string})
    if fmt == "openai-chat":
        call = {"id": string, "type": string, "function": {"name": string, "arguments": string}}
        message = {"role": string, "content": string, "weight": Value("int8"), "tool_calls": [call],
                   "tool_call_id": string}  # [struct]: a list of structs (Sequence(dict) would be a dict of lists)
        return Features({"messages": [message], "tools": string})
    return None  # prm800k: inferred


def _arrow_row(fmt: str, row: dict[str, Any]) -> dict[str, Any]:
    if fmt == "openai-chat":
        return {**row, "tools": json.dumps(row["tools"], ensure_ascii=False)}
    return row


def save_dataset(rows: list[dict[str, Any]], fmt: str, out: Path) -> None:
    """Save ``rows`` of ``fmt`` to the directory ``out`` (replacing what is there: the caller checked --force)."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise InputError("--hf-dataset needs the datasets library: pip install 'peerstep[prm]'") from exc
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    data = Dataset.from_list([_arrow_row(fmt, r) for r in rows], features=_features(fmt))
    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # the command prints one line of its own; a shard bar per save is noise
    try:
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        data.save_to_disk(str(out))
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        if not quiet:
            enable_progress_bars()
