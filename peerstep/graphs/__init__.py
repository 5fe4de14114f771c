"""LangGraph state machines: the reason/act loop (and, later, parallel peer-sharing rounds)."""

from peerstep.graphs.react import build_react_graph, run_trajectory
from peerstep.graphs.state import TrajectoryState

__all__ = ["TrajectoryState", "build_react_graph", "run_trajectory"]
