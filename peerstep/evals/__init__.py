"""The eval runner: datasets × strategies → outcomes, summaries with confidence intervals, cost-of-pass; reports
pooled over several evals, with paired comparisons, plots and one HTML page."""

from peerstep.evals._baselines import first_program, last_line
from peerstep.evals._episode import ClientSpec, Executor, LocalExecutor, RoundShape
from peerstep.evals._load import load_eval
from peerstep.evals._pernode import NodeEngines
from peerstep.evals._pool import PairedComparison, PooledReport, load_report, load_reports, mcnemar_exact, pool
from peerstep.evals._ray import RayExecutor
from peerstep.evals._report import EpisodeOutcome, EvalReport, StrategySummary, summarize, wilson_interval
from peerstep.evals._runner import EvalAborted, load_finished, run_episode_outcome, run_eval

__all__ = ["ClientSpec", "EpisodeOutcome", "EvalAborted", "EvalReport", "Executor", "LocalExecutor", "NodeEngines",
           "PairedComparison", "PooledReport", "RayExecutor", "RoundShape", "StrategySummary", "first_program",
           "last_line", "load_eval", "load_finished", "load_report", "load_reports", "mcnemar_exact", "pool",
           "run_episode_outcome", "run_eval", "summarize", "wilson_interval"]
