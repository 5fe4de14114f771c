"""The scripted model for graph-logic tests lives in the package (``peerstep.testing.model``) so users can use it."""

from peerstep.testing.model import PerTrajectoryClient, Reply, ScriptedClient, native_call

__all__ = ["PerTrajectoryClient", "Reply", "ScriptedClient", "native_call"]
