"""Process-supervision datasets from step logs and their ``label`` records alone (no replay).

Formats (one JSON object per line, so ``datasets.load_dataset("json", data_files=PATH)`` reads every one):

- ``trl-prm``: TRL's stepwise supervision, ``{"prompt", "completions": [str], "labels": [bool]}``, one row per
  labelled trajectory. TRL joins the prompt and the steps with its ``step_separator`` (default ``"\\n"``, the one
  to train with) and puts each step's label on the step's last token. A step's text can hold newlines itself.
- ``math-shepherd``: ``{"input", "label", "task"}``: the question, then ``Step i: TEXT ки`` per step; ``label`` is
  the same text with ``+`` or ``-`` in place of each ``ки`` tag.
- ``prm800k``: PRM800K's shape, one line per trajectory: ``question`` (problem, ground truth, the steps) and
  ``label.steps[].completions[0].rating`` from the soft label: **-1** when no continuation reached the answer
  (value 0), **0** when fewer than half did (0 < value < 0.5), **+1** otherwise (value >= 0.5); an inferred step
  (below) is +1 or -1. ``finish_reason``: ``solution`` (the trajectory's answer was right), ``found_error`` (the
  steps stop at the first -1, as a PRM800K labeller stops), else ``give_up``.
- ``openai-chat``: OpenAI's fine-tuning chat format with ``tools`` and assistant ``tool_calls`` (each answered by a
  ``tool`` message), for the trajectories whose answer was right; every assistant turn carries ``weight`` 1, or 0
  when its label says no continuation from it reached the answer. Calls the model wrote as text move out of the
  reply into ``tool_calls``; the run's system prompt is kept only when every call was native (it teaches the
  text format otherwise, which the converted turns no longer follow).

A step (``peerstep.steplog._steps``) is one model call with its tool calls and their results; its text here is
the model's reply, then each tool result as ``<tool_response>…</tool_response>`` (and, for calls the server
returned natively, the call as ``<tool_call>{json}</tool_call>`` before it). A step without a label record
(``--search binary`` labels only the steps it probed) takes the label the search assumes: positive before a step
with a positive label, negative after one with a negative label; a trajectory's steps stop before the first step
neither rule decides.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peerstep._errors import InputError
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.steplog._steps import STEP_SEPARATOR, Step, labels_of, step_text, trajectory_steps
from peerstep.steplog._store import StepLogError

PRM_FORMATS = ("trl-prm", "math-shepherd", "prm800k", "openai-chat")
STEP_TAG = "ки"
SEPARATOR = STEP_SEPARATOR


@dataclass
class Labelled:
    """One labelled trajectory: its question, steps, their labels (None: undecided) and soft values."""

    run_id: str
    trajectory: int
    question: str
    gold: str | None
    answer: str | None
    correct: bool
    start: StepRecord
    steps: list[Step]
    hard: list[bool]
    values: list[float | None]


def rating(value: float | None, hard: bool) -> int:
    """PRM800K's rating of a step from its soft label (thresholds in the module docstring)."""
    if value is None:
        return 1 if hard else -1
    if value <= 0:
        return -1
    return 0 if value < 0.5 else 1


def step_labels(steps: list[Step], labels: dict[str, StepRecord]) -> tuple[list[bool], list[float | None]]:
    """Each step's hard label and soft value, up to the first step that neither its label nor the search's
    monotone assumption decides (see the module docstring)."""
    hard: list[bool | None] = [bool(labels[s.reason.step_id].data.get("hard")) if s.reason.step_id in labels
                               else None for s in steps]
    values: list[float | None] = [float(labels[s.reason.step_id].data.get("value", 0.0))
                                  if s.reason.step_id in labels else None for s in steps]
    out: list[bool] = []
    for i, h in enumerate(hard):
        if h is None:
            if any(x is True for x in hard[i + 1:]):
                h = True
            elif any(x is False for x in hard[:i]):
                h = False
            else:
                break
        out.append(h)
    return out, values[:len(out)]


def labelled_trajectories(run_ids: list[str], runs_dir: Path | None) -> Iterator[Labelled]:
    """Every trajectory of ``run_ids`` that has labels, in order. An unknown or unreadable run is an
    ``InputError``; a run still being written is refused (its labels may be half done)."""
    for run_id in run_ids:
        try:
            with StepLog.open(run_id, runs_dir) as log:
                meta = log.settle_status()
                records = list(log.records())
                run_id = log.run_id
        except (StepLogError, sqlite3.Error, ValueError) as exc:  # a row that is not a record is a ValueError
            raise InputError(f"run {run_id}: cannot read its log ({str(exc).splitlines()[0]})") from exc
        if meta.get("status") == "running":
            raise InputError(f"run {run_id} is still being written (process {meta.get('pid')}); export it when it "
                             "has finished")
        labels = labels_of(records)
        if not labels:
            continue
        for tid in sorted({r.trajectory_id for r in records if r.trajectory_id >= 0}):
            mine = [r for r in records if r.trajectory_id == tid]
            steps = trajectory_steps(mine)
            start = next((r for r in mine if r.kind == StepKind.RUN_START), None)
            final = next((r for r in mine if r.kind == StepKind.FINAL), None)
            if start is None or not any(s.reason.step_id in labels for s in steps):
                continue
            hard, values = step_labels(steps, labels)
            if not hard:
                continue
            outcome = labels.get(steps[-1].reason.step_id) if steps and steps[-1].final else None
            correct = bool(outcome.data.get("hard")) if outcome is not None else False
            yield Labelled(run_id=run_id, trajectory=tid, question=start.text or str(meta.get("question", "")),
                           gold=meta.get("gold"), answer=final.text if final else None, correct=correct,
                           start=start, steps=steps[:len(hard)], hard=hard, values=values)


def trl_row(t: Labelled) -> dict[str, Any]:
    return {"prompt": t.question, "completions": [step_text(s) for s in t.steps], "labels": t.hard}


def shepherd_row(t: Labelled) -> dict[str, Any]:
    texts = [step_text(s).replace(STEP_TAG, "") for s in t.steps]
    body = [f"Step {i + 1}: {text} {STEP_TAG}" for i, text in enumerate(texts)]
    marked = [f"Step {i + 1}: {text} {'+' if ok else '-'}" for i, (text, ok) in enumerate(zip(texts, t.hard,
                                                                                            strict=True))]
    return {"input": f"{t.question} " + "\n".join(body), "label": f"{t.question} " + "\n".join(marked),
            "task": "peerstep"}


def prm800k_row(t: Labelled) -> dict[str, Any]:
    ratings = [rating(v, h) for v, h in zip(t.values, t.hard, strict=True)]
    texts = full = [step_text(s) for s in t.steps]
    if t.correct and len(t.steps) and t.steps[-1].final:
        finish = "solution"
    elif -1 in ratings:
        finish = "found_error"
        cut = ratings.index(-1) + 1
        ratings, texts = ratings[:cut], texts[:cut]
    else:
        finish = "give_up"
    return {
        "labeler": "peerstep-monte-carlo", "timestamp": None, "generation": None,
        "is_quality_control_question": False, "is_initial_screening_question": False,
        "question": {"problem": t.question, "ground_truth_answer": t.gold, "pre_generated_steps": full,
                     "pre_generated_answer": t.answer, "pre_generated_verifier_score": None},
        "label": {"steps": [{"completions": [{"text": text, "rating": r, "flagged": False}],
                             "human_completion": None, "chosen_completion": 0} for text, r in zip(texts, ratings,
                                                                                                 strict=True)],
                  "total_time": 0, "finish_reason": finish},
        "peerstep": {"run_id": t.run_id, "trajectory": t.trajectory, "values": t.values[:len(ratings)]},
    }


def _schemas(start: StepRecord) -> list[dict[str, Any]]:
    """The tools the trajectory was offered, as OpenAI ``tools`` entries: logged by runs since labels came; for
    older runs, the built-in tools' schemas by name (a tool peerstep does not know gets an open schema)."""
    if isinstance(start.data.get("tool_schemas"), list):
        return list(start.data["tool_schemas"])
    from peerstep.environments.question import submit_answer
    from peerstep.tools import Tool, calculator_tool
    from peerstep.tools.python import PythonSession

    known = {t.name: t for t in (calculator_tool(), Tool(submit_answer), PythonSession().tool())}
    return [known[name].schema() if name in known else
            {"type": "function", "function": {"name": name, "description": "", "parameters": {"type": "object"}}}
            for name in start.data.get("tools") or []]


def chat_row(t: Labelled) -> dict[str, Any] | None:
    """A successful trajectory as fine-tuning chat: each step an assistant turn with its calls, then the results."""
    from peerstep.client._parsing import parse_tool_calls

    if not t.correct:
        return None
    tools = _schemas(t.start)
    names = [s["function"]["name"] for s in tools]
    messages: list[dict[str, Any]] = []
    native = all(r.tool.source == "native" for s in t.steps for r in s.records
                 if r.kind == StepKind.TOOL_CALL and r.tool is not None)
    if native and t.start.data.get("system_prompt"):  # a prompt teaching calls written as text would contradict
        messages.append({"role": "system", "content": t.start.data["system_prompt"]})
    messages.append({"role": "user", "content": t.question})
    for step, ok in zip(t.steps, t.hard, strict=True):
        calls = [r.tool for r in step.records if r.kind == StepKind.TOOL_CALL and r.tool is not None]
        content = step.reason.text or ""
        if calls and calls[0].source != "native":  # the call was written in the text: it moves to tool_calls
            parsed = [c for c in parse_tool_calls(content, None, names).calls if c.start is not None]
            if parsed and parsed[0].start is not None and parsed[0].end is not None:
                content = content[:parsed[0].start]
        turn: dict[str, Any] = {"role": "assistant", "content": content.strip() or None, "weight": int(ok)}
        if calls:
            turn["tool_calls"] = [{"id": c.call_id, "type": "function", "function": {
                "name": c.name, "arguments": c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)}}
                for c in calls]
        messages.append(turn)
        for rec in step.records:
            if rec.kind == StepKind.OBSERVATION and rec.tool is not None and rec.tool.call_id:
                messages.append({"role": "tool", "tool_call_id": rec.tool.call_id,
                                 "content": rec.tool.output if rec.tool.output is not None else rec.text or ""})
    return {"messages": messages, "tools": tools}


ROWS: dict[str, Callable[[Labelled], dict[str, Any] | None]] = {
    "trl-prm": trl_row, "math-shepherd": shepherd_row, "prm800k": prm800k_row, "openai-chat": chat_row}


def export_prm(run_ids: list[str], fmt: str, out: Path | None, *, force: bool = False,
               runs_dir: Path | None = None, hf_dataset: bool = False) -> tuple[Path, int]:
    """Write ``fmt`` rows for the labelled trajectories of ``run_ids`` to ``out`` (JSON lines, or with
    ``hf_dataset`` a ``datasets.save_to_disk`` directory, see ``_hf``); returns the path and the row count. An
    existing ``out`` is refused unless ``force``; no labelled trajectory is an error too."""
    if fmt not in ROWS:
        raise InputError(f"unknown format {fmt!r}; one of: {', '.join(ROWS)}")
    if out is None:
        raise InputError(f"--format {fmt} writes a " + ("directory: give --out DIR" if hf_dataset else
                                                         "file: give --out PATH.jsonl"))
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    rows = [row for t in labelled_trajectories(run_ids, runs_dir) if (row := ROWS[fmt](t)) is not None]
    if not rows:
        hint = " right-answered" if fmt == "openai-chat" else ""
        raise InputError(f"no labelled{hint} trajectory in the {len(run_ids)} run(s): run `peerstep label` first")
    if hf_dataset:
        from peerstep.export._hf import save_dataset

        save_dataset(rows, fmt, out)
        return out, len(rows)
    if out.is_dir():
        raise InputError(f"{out} is a directory; a {fmt} JSONL export needs a file path (or pass --hf-dataset)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out, len(rows)
