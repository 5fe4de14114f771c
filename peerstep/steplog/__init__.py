"""Step logs: typed, append-only records of every step, kept outside the graph state."""

from peerstep.steplog._records import StepKind, StepRecord, ToolInfo, Usage, new_id
from peerstep.steplog._steps import Step, labels_of, process_step_texts, trajectory_steps
from peerstep.steplog._store import RunSummary, StepLog, StepLogError, StepRow, list_runs, runs_dir

__all__ = ["RunSummary", "Step", "StepKind", "StepLog", "StepLogError", "StepRecord", "StepRow", "ToolInfo", "Usage",
           "labels_of", "list_runs", "new_id", "process_step_texts", "runs_dir", "trajectory_steps"]
