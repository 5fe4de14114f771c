"""The single-trajectory reason/act graph.

    START → reason ─┬─(action)──→ act ─┬─(not done)─→ reason
                    └─(done)──→ END     └─(done)────→ END

``reason`` is one model call; ``act`` runs the requested tool calls through the
environment. Budgets are checked in ``reason``: when one runs out, the next call is forced
to answer (a named ``tool_choice`` on ``submit_answer``, which llama.cpp and vLLM both
enforce with constrained decoding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.graph import END, START, StateGraph

from peerstep.graphs.state import TrajectoryState

if TYPE_CHECKING:
    from peerstep.agent._trajectory import Trajectory

# a forced answer gets this many extra model calls before the trajectory is given up
_FORCED_GRACE = 2


def build_react_graph(trajectory: Trajectory) -> Any:
    """Compile the reason/act graph for one trajectory runtime."""

    def after_reason(state: TrajectoryState) -> str:
        return END if state.get("done") else "act"

    def after_act(state: TrajectoryState) -> str:
        if state.get("done"):
            return END
        if state.get("forced") and state["steps"] > trajectory.config.budget.max_steps + _FORCED_GRACE:
            return "give_up"
        return "reason"

    async def give_up(state: TrajectoryState) -> TrajectoryState:
        from peerstep.steplog import StepKind

        text = "the budget ran out and the forced answer was not given"
        trajectory.record(StepKind.ERROR, state["last_step_id"], text=text, data={"error": "no_answer"})
        return {"done": True, "error": text}

    graph = StateGraph(TrajectoryState)
    graph.add_node("reason", trajectory.reason)
    graph.add_node("act", trajectory.act)
    graph.add_node("give_up", give_up)
    graph.add_edge(START, "reason")
    graph.add_conditional_edges("reason", after_reason, ["act", END])
    graph.add_conditional_edges("act", after_act, ["reason", "give_up", END])
    graph.add_edge("give_up", END)
    return graph.compile()


def recursion_limit(trajectory: Trajectory) -> int:
    """Enough supersteps for the budget plus the forced answer; set explicitly (defaults vary by version)."""
    return 2 * (trajectory.config.budget.max_steps + _FORCED_GRACE + 2) + 4


async def run_trajectory(trajectory: Trajectory) -> TrajectoryState:
    """Run one trajectory to its end and return the final state."""
    state = await trajectory.start()
    graph = build_react_graph(trajectory)
    final: TrajectoryState = await graph.ainvoke(state, {"recursion_limit": recursion_limit(trajectory)})
    return final
