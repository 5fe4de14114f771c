"""Peer labels: the measured effect of each LeaP injection on the trajectory that heard it.

A LeaP injection appends one user message to a trajectory (the peers' summaries in ``<comment>``, and a nudge to
re-check). Its effect is measured as a counterfactual on the run's checkpoints: ``K`` continuations are forked from
the state just after the injection (``afork`` from the ``peer_inject`` step: the comment included) and ``K`` from
the same state with exactly that message removed (``afork(..., without_injection=True)``); the two sets go to the
server together, both are graded by the task's own checker, and

    effect = value_with - value_without      (each value = correct continuations / K)

is stored as a ``label`` record on the injection (``parent_id`` = the injection step): ``{"peer": true, "with":
{n, k, value, fork_run}, "without": {n, k, value, fork_run}, "effect", "inject_step", "round", "sources"}``.
The continuations run alone (a fork has no peers), so the effect is that of this one comment on this trajectory,
not of sharing in later rounds. An injection that carried no peer's words ("no comments from peers") is not
labelled: there is nothing to take away. Labels are append-only: an injection already labelled is skipped, so a
killed pass run again goes on where it stopped.

``peer_effects`` reads the labels back (no model needed): how often the comment helped (effect > threshold), hurt
(effect < -threshold) or did nothing, with the effects' histogram. The default threshold, 0.25, is one
continuation's worth at K = 4: a single continuation flipping is within sampling noise, and is not called an effect.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from peerstep._errors import InputError
from peerstep._label import LabelSummary, Progress, Target, open_targets
from peerstep._runner import Task, afork
from peerstep.agent import ModelClient
from peerstep.grading import grade
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.steplog._steps import PEER_EFFECT_THRESHOLD
from peerstep.steplog._store import StepLogError

DEFAULT_THRESHOLD = PEER_EFFECT_THRESHOLD
BIN = 0.25
"""Width of the effect histogram's bins, centred on multiples of it (-1, -0.75, …, +1): exact bins at K = 4."""


def peer_labels_of(records: list[StepRecord]) -> dict[str, StepRecord]:
    """Labelled injection step id -> its (first) peer label."""
    out: dict[str, StepRecord] = {}
    for rec in records:
        if rec.kind == StepKind.LABEL and rec.data.get("peer") and rec.parent_id and rec.parent_id not in out:
            out[rec.parent_id] = rec
    return out


def commented(rec: StepRecord) -> bool:
    """Whether an injection carried peers' words (a routed source), not just "no comments, continue"."""
    return rec.kind == StepKind.PEER_INJECT and bool(rec.data.get("sources"))


class _Arm(BaseModel):
    n: int
    k: int
    value: float
    fork_run: str


async def _arm(target: Target, inject: StepRecord, client: ModelClient, k: int, runs_dir: Path | None,
               without: bool) -> tuple[_Arm, int]:
    result = await afork(target.run_id, inject.step_id, client, k=k, task=target.task, runs_dir=runs_dir,
                         without_injection=without)
    correct = sum(1 for tid in range(k) if grade(result.answers.get(tid), target.gold, target.checker))
    return _Arm(n=k, k=correct, value=correct / k, fork_run=result.run_id), result.tokens


async def _label_one(target: Target, inject: StepRecord, client: ModelClient, k: int, runs_dir: Path | None,
                     summary: LabelSummary, progress: Progress | None) -> None:
    """Both arms of one injection, sent together; the label is written when both are graded."""
    (with_, t1), (without, t2) = await asyncio.gather(
        _arm(target, inject, client, k, runs_dir, without=False),
        _arm(target, inject, client, k, runs_dir, without=True))
    effect = round(with_.value - without.value, 6)
    with StepLog.open(target.run_id, runs_dir) as log:
        log.log(StepKind.LABEL, trajectory_id=inject.trajectory_id, parent_id=inject.step_id,
                text=f"effect {effect:+.2f} ({with_.k}/{k} with the comment, {without.k}/{k} without)",
                data={"peer": True, "with": with_.model_dump(), "without": without.model_dump(), "effect": effect,
                      "inject_step": inject.step_id, "round": inject.data.get("round"),
                      "sources": inject.data.get("sources")})
    summary.labelled += 1
    summary.rollouts += 2 * k
    summary.full_rollouts += 2 * k
    summary.tokens += t1 + t2
    if progress is not None:
        progress("step", {"labelled": 1, "rollouts": 2 * k, "tokens": t1 + t2})


async def alabel_peers(runs: list[str | tuple[str, dict[str, Any]]], client: ModelClient, *, k: int = 4,
                       runs_dir: Path | None = None, tasks: dict[str, Task] | None = None, concurrency: int = 1,
                       progress: Progress | None = None) -> LabelSummary:
    """Label every peer injection of ``runs`` (run ids, or (run id, dataset context) pairs as ``eval_targets``
    gives) by its measured effect, ``k`` continuations with the comment and ``k`` without. ``labelled`` counts
    injections; runs without gold or without injections are in ``skipped`` with why. ``concurrency`` injections
    are labelled at once (each one's 2K rollouts together)."""
    if k < 1:
        raise InputError(f"--rollouts must be at least 1, got {k}")
    started = time.perf_counter()
    summary = LabelSummary()
    work: list[tuple[Target, StepRecord]] = []
    trajectories: set[tuple[str, int]] = set()
    for target in open_targets(runs, runs_dir, tasks, summary):
        with StepLog.open(target.run_id, runs_dir) as log:
            records = list(log.records())
            strategy = log.meta().get("strategy")
        injections = [r for r in records if r.kind == StepKind.PEER_INJECT]
        if not injections:
            summary.skipped[target.run_id] = (f"no peer injections (strategy {strategy}): only runs that share "
                                              "(leap, leap+verify) have any to label")
            summary.runs -= 1
            continue
        done = peer_labels_of(records)
        for inject in injections:
            if not commented(inject):
                summary.no_comment += 1
            elif inject.step_id in done:
                summary.already += 1
            else:
                work.append((target, inject))
                trajectories.add((target.run_id, inject.trajectory_id))
    summary.trajectories = len(trajectories)
    if progress is not None:
        progress("plan", {"steps": len(work), "trajectories": len(trajectories), "search": "peers"})
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: Target, inject: StepRecord) -> None:
        async with gate:
            try:
                await _label_one(target, inject, client, k, runs_dir, summary, progress)
            except InputError as exc:  # an injection that cannot be forked: reported, the others go on
                summary.skipped[target.run_id] = f"injection {inject.step_id}: {exc}"

    await asyncio.gather(*(one(*item) for item in work))
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


class PeerEffects(BaseModel):
    """How often peer comments helped, hurt or did nothing, from the peer labels of some runs."""

    threshold: float = Field(description="|effect| at or below this counts as no effect")
    runs: int = Field(default=0, description="runs read that hold peer injections")
    labelled: int = Field(default=0, description="injections with a peer label")
    unlabelled: int = Field(default=0, description="injections with a comment but no label yet")
    no_comment: int = Field(default=0, description="injections that carried no peer's words (never labelled)")
    helped: int = 0
    hurt: int = 0
    neutral: int = 0
    mean_effect: float | None = None
    mean_with: float | None = Field(default=None, description="mean value of the continuations with the comment")
    mean_without: float | None = Field(default=None, description="... and without it")
    rollouts: int = 0
    histogram: list[tuple[float, int]] = Field(default_factory=list,
                                               description="(bin centre, injections): bins of width BIN, -1 to +1")
    skipped: dict[str, str] = Field(default_factory=dict, description="run id -> why it holds nothing to count")


def peer_effects(runs: list[str | tuple[str, dict[str, Any]]], runs_dir: Path | None = None, *,
                 threshold: float = DEFAULT_THRESHOLD) -> PeerEffects:
    """Count the peer labels of ``runs`` (ids, or pairs as ``eval_targets`` gives): read only, no model."""
    if not 0 <= threshold < 1:
        raise InputError(f"--threshold must be in [0, 1), got {threshold}")
    out = PeerEffects(threshold=threshold)
    effects: list[float] = []
    withs: list[float] = []
    withouts: list[float] = []
    for item in runs:
        run_id = item if isinstance(item, str) else item[0]
        try:
            with StepLog.open(run_id, runs_dir) as log:
                records = list(log.records())
                meta = log.meta()
                run_id = log.run_id
        except (StepLogError, sqlite3.Error, ValueError) as exc:
            raise InputError(f"run {run_id}: cannot read its log ({str(exc).splitlines()[0]})") from exc
        injections = [r for r in records if r.kind == StepKind.PEER_INJECT]
        if not injections:
            out.skipped[run_id] = f"no peer injections (strategy {meta.get('strategy')})"
            continue
        if meta.get("gold") is None or str(meta.get("gold")).strip() == "":
            out.skipped[run_id] = "no gold answer: its injections cannot be labelled"
            continue
        out.runs += 1
        labels = peer_labels_of(records)
        for inject in injections:
            if not commented(inject):
                out.no_comment += 1
                continue
            rec = labels.get(inject.step_id)
            if rec is None:
                out.unlabelled += 1
                continue
            effect = float(rec.data.get("effect", 0.0))
            effects.append(effect)
            withs.append(float((rec.data.get("with") or {}).get("value", 0.0)))
            withouts.append(float((rec.data.get("without") or {}).get("value", 0.0)))
            out.rollouts += int((rec.data.get("with") or {}).get("n", 0)) + int(
                (rec.data.get("without") or {}).get("n", 0))
    out.labelled = len(effects)
    out.helped = sum(1 for e in effects if e > threshold)
    out.hurt = sum(1 for e in effects if e < -threshold)
    out.neutral = out.labelled - out.helped - out.hurt
    if effects:
        out.mean_effect = round(sum(effects) / len(effects), 4)
        out.mean_with = round(sum(withs) / len(withs), 4)
        out.mean_without = round(sum(withouts) / len(withouts), 4)
    bins = round(1 / BIN)
    counts = dict.fromkeys(range(-bins, bins + 1), 0)
    for e in effects:  # half a bin rounds away from zero, the same on both sides
        at = int(math.copysign(math.floor(abs(e) / BIN + 0.5), e))
        counts[max(-bins, min(bins, at))] += 1
    out.histogram = [(round(i * BIN, 4), c) for i, c in sorted(counts.items())]
    return out


def effects_text(effects: PeerEffects, width: int = 40) -> list[str]:
    """The summary as lines of text: the counts, then the histogram with one bar per bin."""
    n = effects.labelled
    if not n:
        return [f"no labelled peer injections ({effects.unlabelled} unlabelled, {effects.no_comment} without a "
                "comment): run `peerstep label --peers` first"]

    def share(count: int) -> str:
        return f"{count} ({100 * count / n:.0f}%)"

    lines = [f"{n} peer injections labelled in {effects.runs} runs ({effects.rollouts} rollouts): "
             f"helped {share(effects.helped)}, hurt {share(effects.hurt)}, no effect {share(effects.neutral)} "
             f"(|effect| <= {effects.threshold:.2f}); mean effect {effects.mean_effect:+.3f} "
             f"(value with the comment {effects.mean_with:.3f}, without {effects.mean_without:.3f})"]
    if effects.unlabelled or effects.no_comment:
        lines.append(f"not counted: {effects.unlabelled} injections not labelled yet, {effects.no_comment} that "
                     "carried no peer's words")
    top = max(c for _, c in effects.histogram) or 1
    lines.append("effect histogram (with - without):")
    for centre, count in effects.histogram:
        bar = "#" * (round(width * count / top) if count else 0)
        lines.append(f"  {centre:+.2f} | {bar} {count}")
    return lines
