"""One peerstep run (one episode) as one Inspect AI sample.

Why one sample per episode, not one per trajectory (with ``epoch`` = trajectory): an Inspect sample is what its
accuracy counts, and a run answers once -- the vote over its trajectories. One sample per trajectory would make
the accuracy panel the per-trajectory rate, which is neither what the run answered nor what ``peerstep eval``
reports; and N "epochs" of one question would be read as N independent tries. So:

- the sample's **messages** are the conversation of the *adopted* trajectory (the first one in the winning vote
  group; trajectory 0 for a single run), so the Messages tab reads like any one-agent eval;
- the **transcript** (events) holds every trajectory as its own agent span ("trajectory k"), with its model calls,
  tool calls, the summaries it wrote, the peer summaries it received (info events naming the source
  trajectories and their similarities), verifier scores (intermediate score events) and its final answer; the
  barriers and the vote are info events outside the spans;
- **model usage** counts every model call of every trajectory, summaries included: what the episode cost;
- the **score** is the grader's verdict on the run's answer (``C``/``I``, with the answer and the gold); a run
  without a verdict (no gold, or interrupted before it answered) has no score and, if it did not finish, an
  error saying so;
- **metadata** lists every trajectory's answer, reward, model calls and fate, and the vote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspect_ai.dataset import Sample
from inspect_ai.event import SampleInitEvent
from inspect_ai.log import EvalError, EvalSample
from inspect_ai.model import ChatMessageAssistant, ModelOutput, ModelUsage
from inspect_ai.scorer import Score

from peerstep.evals import EpisodeOutcome
from peerstep.export._inspect_trajectory import Trajectory, TrajectoryBuilder, add_usage, utc
from peerstep.steplog import StepKind, StepLog, StepRecord

SCORER = "peerstep"


@dataclass
class RunSample:
    """A converted run: the sample, and what the log header needs from the run."""

    sample: EvalSample
    meta: dict[str, Any]
    sampling: list[dict[str, Any]]  # every model call's sampling parameters
    started: float | None  # None: nothing was recorded
    ended: float | None


def adopted_trajectory(trajectories: dict[int, Trajectory], vote: dict[str, Any] | None) -> int | None:
    """The trajectory whose answer the run gave: the first member of the winning vote group, else the first
    trajectory with an answer, else the first trajectory."""
    decision = (vote or {}).get("decision") or {}
    for group in decision.get("groups") or []:
        if isinstance(group, list | tuple) and len(group) >= 2 and group[0] == decision.get("answer") and group[1]:
            member = int(group[1][0])
            if member in trajectories:
                return member
    own = sorted(tid for tid in trajectories if tid >= 0)
    answered = [tid for tid in own if trajectories[tid].answer is not None]
    return answered[0] if answered else own[0] if own else None


def _verdict(meta: dict[str, Any], records: list[StepRecord]) -> tuple[bool | None, str | None, str | None]:
    """(correct, answer, gold) as the run recorded them: the runner's meta, else its run_end/aggregate records,
    else a baseline's single final (its reward is the grade)."""
    run_end = next((r for r in reversed(records) if r.kind is StepKind.RUN_END), None)
    vote = next((r for r in reversed(records) if r.kind is StepKind.AGGREGATE), None)
    finals = [r for r in records if r.kind is StepKind.FINAL]
    correct = meta.get("correct")
    for rec in (run_end, vote):
        if correct is None and rec is not None:
            correct = rec.data.get("correct")
    if correct is None and len(finals) == 1 and finals[0].reward is not None and vote is None:
        correct = finals[0].reward >= 1.0
    answer = meta.get("answer") or (run_end.text if run_end else None) or (vote.text if vote else None)
    gold = meta.get("gold") or next((str(f.data["gold"]) for f in finals if f.data.get("gold") is not None), None)
    return correct, answer, gold


def run_sample(log: StepLog, sample_id: str | int, outcome: EpisodeOutcome | None = None) -> RunSample:
    """Convert one run; an eval's ``outcome``, when given, is the verdict (so accuracy equals the eval report's)."""
    meta = log.settle_status()
    records = list(log.records())
    started = records[0].created_at if records else float(meta.get("created_at", 0.0))
    ended = records[-1].created_at if records else started
    model = str(meta.get("model") or next((r.model for r in records if r.model), None) or "unknown")
    builder = TrajectoryBuilder(records, started, model)
    for r in records:
        builder.add(r)
    trajectories = builder.trajectories
    vote = next((r.data for r in reversed(records) if r.kind is StepKind.AGGREGATE), None)
    chosen = adopted_trajectory(trajectories, vote)
    correct, answer, gold = _verdict(meta, records)
    if outcome is not None:
        correct, answer, gold = outcome.correct, outcome.answer, outcome.gold

    question = next((r.text for r in records if r.kind is StepKind.RUN_START and r.text), None)
    question = question or str(meta.get("question") or "")
    messages = list(trajectories[chosen].messages) if chosen is not None else []
    last_reply = next((m for m in reversed(messages) if isinstance(m, ChatMessageAssistant)), None)
    usage: dict[str, ModelUsage] = {}
    for t in trajectories.values():
        for name, u in t.usage.items():
            add_usage(usage, name, u)

    status = str(meta.get("status") or "unknown")
    problem = outcome.error if outcome is not None and outcome.error else None
    if status != "done":
        why = meta.get("status_reason") or meta.get("error") or "it has no recorded end"
        problem = f"run {status}: {why}" + (f"; {problem}" if problem else "")
    score = None if correct is None else Score(
        value="C" if correct else "I", answer=answer, explanation=_explain(answer, gold, vote),
        metadata={"gold": gold, "correct": bool(correct)})

    sample_meta: dict[str, Any] = {
        "run_id": log.run_id, "status": status, "strategy": meta.get("strategy"), "n": meta.get("n"),
        "dataset": meta.get("dataset"), "task_id": meta.get("task_id"), "answer": answer,
        "adopted_trajectory": chosen, "vote": (vote or {}).get("decision"),
        "stop_reason": (vote or {}).get("stop_reason"),
        "trajectories": [_trajectory_summary(t) for tid, t in sorted(trajectories.items()) if tid >= 0]}
    init = SampleInitEvent(sample=Sample(id=sample_id, input=question, target=gold or "",
                                         metadata={"run_id": log.run_id}),
                           state={"messages": [m.model_dump() for m in messages[:2]]},
                           timestamp=utc(started), working_start=0.0)
    sample = EvalSample(
        id=sample_id, epoch=1, input=question, target=gold or "", messages=messages,
        output=ModelOutput(model=model, choices=[]) if last_reply is None
        else ModelOutput.from_message(last_reply),
        scores={SCORER: score} if score is not None else None, metadata=sample_meta,
        events=[init, *builder.finish()], model_usage=usage, started_at=utc(started).isoformat(),
        completed_at=utc(ended).isoformat(),
        total_time=round(ended - started, 3), working_time=round(ended - started, 3), uuid=log.run_id,
        error=EvalError(message=problem, traceback=problem, traceback_ansi=problem) if problem else None)
    sampling = [r.sampling for r in records if r.kind is StepKind.REASON and r.sampling]
    return RunSample(sample=sample, meta=meta, sampling=sampling, started=started, ended=ended)


def unrecorded_sample(outcome: EpisodeOutcome, sample_id: str | int) -> RunSample:
    """An eval episode that failed before its run was recorded: the outcome's verdict (it counts in the report's
    accuracy, so it counts here) and its error, without a transcript."""
    problem = outcome.error or "the episode's run was not recorded"
    sample = EvalSample(
        id=sample_id, epoch=1, input=f"(task {outcome.task_id}: its run was not recorded)", target=outcome.gold or "",
        scores={SCORER: Score(value="C" if outcome.correct else "I", answer=outcome.answer,
                              explanation=_explain(outcome.answer, outcome.gold, None),
                              metadata={"gold": outcome.gold, "correct": outcome.correct})},
        metadata={"run_id": None, "status": "not recorded", "strategy": outcome.strategy, "n": outcome.n,
                  "task_id": outcome.task_id, "answer": outcome.answer},
        error=EvalError(message=problem, traceback=problem, traceback_ansi=problem))
    meta = {"strategy": outcome.strategy, "n": outcome.n, "task_id": outcome.task_id}
    return RunSample(sample=sample, meta=meta, sampling=[], started=None, ended=None)


def _explain(answer: str | None, gold: str | None, vote: dict[str, Any] | None) -> str:
    parts = [f"answer {answer!r}" if answer is not None else "no answer", f"gold {gold!r}"]
    decision = (vote or {}).get("decision") or {}
    if decision.get("total"):
        parts.append(f"{decision.get('method', 'vote')} {decision.get('support', 0):g}/{decision['total']:g}")
    return ", ".join(parts)


def _trajectory_summary(t: Trajectory) -> dict[str, Any]:
    tokens = sum(u.output_tokens for u in t.usage.values())
    return {"trajectory": t.tid, "answer": t.answer, "reward": t.reward, "model_calls": t.model_calls,
            "output_tokens": tokens, "pruned": t.pruned, "error": t.error}
