"""Step logs: typed, append-only records of every step, kept outside the graph state."""

from peerstep.steplog._records import StepKind, StepRecord, ToolInfo, Usage, new_id
from peerstep.steplog._store import RunSummary, StepLog, StepLogError, StepRow, list_runs, runs_dir

__all__ = ["RunSummary", "StepKind", "StepLog", "StepLogError", "StepRecord", "StepRow", "ToolInfo", "Usage",
           "list_runs", "new_id", "runs_dir"]
