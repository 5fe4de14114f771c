"""Eval results: one record per episode, and the summary a reader compares strategies by.

Accuracy carries a Wilson 95% interval (small samples are the norm here, and the normal
approximation misbehaves near 0 and 1). Cost-of-pass is the expected spend per correct answer:
total tokens (or dollars) divided by the number of correct answers.
"""

from __future__ import annotations

import math
import statistics

from pydantic import BaseModel, Field

from peerstep.registry import strategy_label


class EpisodeOutcome(BaseModel):
    task_id: str
    index: int
    strategy: str
    n: int
    answer: str | None
    gold: str | None
    correct: bool
    tokens: int = Field(description="every token the model generated for this episode")
    tool_calls: int
    seconds: float
    run_id: str
    error: str | None = None
    steps: int = Field(default=0, description="model calls, all trajectories")


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return 0.0, 0.0
    p = successes / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class StrategySummary(BaseModel):
    strategy: str
    n: int
    episodes: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_tokens: float
    mean_tool_calls: float
    mean_seconds: float
    wall_seconds: float
    errors: int
    tokens_per_correct: float | None
    dollars_per_correct: float | None


def summarize(outcomes: list[EpisodeOutcome], strategy: str, wall_seconds: float,
              price_per_mtok: float | None) -> StrategySummary:
    mine = [o for o in outcomes if o.strategy == strategy]
    correct = sum(o.correct for o in mine)
    total_tokens = sum(o.tokens for o in mine)
    low, high = wilson_interval(correct, len(mine))
    per_correct = total_tokens / correct if correct else None
    return StrategySummary(
        strategy=strategy, n=mine[0].n if mine else 0, episodes=len(mine), correct=correct,
        accuracy=correct / len(mine) if mine else 0.0, ci_low=low, ci_high=high,
        mean_tokens=statistics.mean(o.tokens for o in mine) if mine else 0.0,
        mean_tool_calls=statistics.mean(o.tool_calls for o in mine) if mine else 0.0,
        mean_seconds=statistics.mean(o.seconds for o in mine) if mine else 0.0,
        wall_seconds=wall_seconds, errors=sum(o.error is not None for o in mine),
        tokens_per_correct=per_correct,
        dollars_per_correct=None if per_correct is None or price_per_mtok is None
        else per_correct * price_per_mtok / 1e6)


class EvalReport(BaseModel):
    dataset: str
    model: str
    seed: int
    limit: int
    interrupted: bool = False
    aborted: str | None = Field(default=None, description="why the eval stopped early, e.g. a dead server")
    summaries: list[StrategySummary]
    outcomes: list[EpisodeOutcome]

    def markdown(self) -> str:
        lines = [f"{self.dataset}: {self.model}, {self.limit} tasks, seed {self.seed}"
                 + (" (interrupted: finished episodes only)" if self.interrupted else "")
                 + (" (aborted: finished episodes only)" if self.aborted else ""), "",
                 "| strategy | accuracy (95% CI) | tokens / episode | tool calls / episode | s / episode | "
                 "tokens per correct |", "|---|---|---|---|---|---|"]
        for s in self.summaries:
            label = strategy_label(s.strategy, s.n)
            per = f"{s.tokens_per_correct:,.0f}" if s.tokens_per_correct is not None else "—"
            if s.dollars_per_correct is not None:
                per += f" (${s.dollars_per_correct:.4f})"
            lines.append(f"| {label} | {s.correct}/{s.episodes} = {s.accuracy:.0%} ({s.ci_low:.0%}–{s.ci_high:.0%}) "
                         f"| {s.mean_tokens:,.0f} | {s.mean_tool_calls:.1f} | {s.mean_seconds:.1f} | {per} |")
        return "\n".join(lines)
