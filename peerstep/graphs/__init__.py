"""The LangGraph state machines: the reason/act loop and the parallel graph that runs it per trajectory."""

from peerstep.graphs.parallel import ParallelConfig, ParallelResult, ParallelRun
from peerstep.graphs.react import Loop, build_react_graph

__all__ = ["Loop", "ParallelConfig", "ParallelResult", "ParallelRun", "build_react_graph"]
