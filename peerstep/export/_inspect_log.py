"""Converted runs as one Inspect AI ``EvalLog``: the eval spec, plan, stats and results around the samples.

The results are computed by Inspect itself (``recompute_metrics`` with its ``accuracy`` and ``stderr`` metrics named
in the spec's scorer), so the accuracy panel is Inspect's own arithmetic over the samples' ``C``/``I`` scores.
The generate config in the spec is what every model call of the log shared (a parameter that differed between
calls, such as each trajectory's seed, is left out there and kept in each model event's own config).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalPlan, EvalPlanStep, EvalSpec, EvalStats
from inspect_ai.log import recompute_metrics as inspect_recompute_metrics
from inspect_ai.model import ModelUsage

from peerstep.export._inspect_sample import SCORER, RunSample
from peerstep.export._inspect_trajectory import add_usage, generate_config, utc


@dataclass
class LogSpec:
    """What a log is about: its task name, and what the header says beyond the samples."""

    task: str
    dataset: str | None = None
    seed: int | None = None
    limit: int | None = None
    interrupted: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _common(values: list[Any]) -> Any:
    """The one value every entry shares, else None (so ``model`` reads "a" or nothing, never a wrong one)."""
    distinct = {repr(v) for v in values if v is not None}
    return next(v for v in values if v is not None) if len(distinct) == 1 else None


def shared_sampling(samplings: list[dict[str, Any]]) -> dict[str, Any]:
    """The sampling parameters every model call used; a key whose value differed between calls is dropped."""
    if not samplings:
        return {}
    keys = set().union(*samplings)
    return {k: samplings[0].get(k) for k in keys
            if all(repr(s.get(k)) == repr(samplings[0].get(k)) for s in samplings)}


def build_log(runs: list[RunSample], spec: LogSpec, log_id: str) -> EvalLog:
    metas = [r.meta for r in runs]
    model = _common([m.get("model") for m in metas]) or "mixed"
    strategy, n = _common([m.get("strategy") for m in metas]), _common([m.get("n") for m in metas])
    config = generate_config(shared_sampling([s for r in runs for s in r.sampling]))
    started = min((r.started for r in runs if r.started is not None), default=0.0)
    ended = max((r.ended for r in runs if r.ended is not None), default=started)
    usage: dict[str, ModelUsage] = {}
    for r in runs:
        for name, u in r.sample.model_usage.items():
            add_usage(usage, name, u)
    task_args = {k: v for k, v in {"strategy": strategy, "n": n, "dataset_seed": spec.seed}.items() if v is not None}
    plan_params = {k: v for k, v in {"config": _common([m.get("config") for m in metas]),
                                     "agent": _common([m.get("agent") for m in metas])}.items() if v is not None}
    eval_spec = EvalSpec(
        eval_id=log_id, run_id=log_id, task_id=log_id, created=utc(started).isoformat(), task=spec.task,
        task_args=task_args, solver=f"peerstep/{strategy or 'mixed'}",
        dataset=EvalDataset(name=spec.dataset, samples=len(runs), sample_ids=[r.sample.id for r in runs]),
        model=str(model), model_base_url=_common([m.get("base_url") for m in metas]),
        model_generate_config=config, config=EvalConfig(epochs=1, limit=spec.limit),
        packages={"peerstep": _version("peerstep"), "inspect_ai": _version("inspect_ai")},
        scorers=[{"name": SCORER, "metrics": [{"name": "accuracy"}, {"name": "stderr"}]}],  # type: ignore[list-item]
        metadata={"source": "peerstep export --format inspect", "runs": [r.meta.get("run_id") for r in runs],
                  **spec.metadata})
    log = EvalLog(
        status="cancelled" if spec.interrupted else "success", eval=eval_spec,
        plan=EvalPlan(name="peerstep", steps=[EvalPlanStep(solver=f"peerstep/{strategy or 'mixed'}",
                                                           params=plan_params)], config=config),
        stats=EvalStats(started_at=utc(started).isoformat(), completed_at=utc(ended).isoformat(),
                        model_usage=usage),
        samples=[r.sample for r in runs])
    if any(r.sample.scores for r in runs):
        inspect_recompute_metrics(log)
    return log
