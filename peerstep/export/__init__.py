"""Exports of recorded runs to the formats other tools read (OpenTelemetry traces, Inspect logs, ...).

Every exporter reads the step logs alone (no replay). ``peerstep export`` picks one by ``--format``; the runs come
from run ids or from an eval's ``OUT.json`` (:func:`select_runs`).
"""

from peerstep.export._inspect import export_inspect
from peerstep.export._otlp import ExportError, export_otlp, trace_to
from peerstep.export._prm import step_labels
from peerstep.export._select import select_runs

__all__ = ["ExportError", "export_inspect", "export_otlp", "select_runs", "step_labels", "trace_to"]
