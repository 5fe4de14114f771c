"""The eval runner: datasets × strategies → outcomes, summaries with confidence intervals, cost-of-pass."""

from peerstep.evals._report import EpisodeOutcome, EvalReport, StrategySummary, summarize, wilson_interval
from peerstep.evals._runner import EvalAborted, load_finished, run_episode_outcome, run_eval

__all__ = ["EpisodeOutcome", "EvalAborted", "EvalReport", "StrategySummary", "load_finished", "run_episode_outcome",
           "run_eval",
           "summarize", "wilson_interval"]
