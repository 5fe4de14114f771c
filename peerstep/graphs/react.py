"""The reason/act loop: the one place where a trajectory's steps are sequenced.

    START ─┬─(done)──→ END
           ├─(force_reason)──→ force ─→ reason
           ├─(a pending action: a fork from a reply)──→ act
           └─→ reason ─┬─(done)────→ END
                       └─(action)──→ act ─┬─(done or round over)─→ END
                                          ├─(forced, no answer)──→ give_up → END
                                          └─(otherwise)──────────→ reason

``reason`` is one model call; ``act`` runs the requested tool calls through the environment
(or applies the answer policy to a reply without a call). A caller runs the loop for one
*round*: up to ``round_steps`` model calls or ``round_tokens`` generated tokens, or until the
trajectory finishes. Every strategy runs trajectories this way, between barriers of the parallel
graph; ``single`` is that graph with one trajectory and one long round.

A caller that ends the run sets ``force_reason`` in the state: the ``force`` node logs it and asks for the
answer, as a step of its own, so that a run resumed from its checkpoint never logs it twice.

Budgets are checked in ``reason``: when one runs out, the next call is forced to answer (a named
``tool_choice`` on the finishing tool, which llama.cpp and vLLM enforce with constrained decoding).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph

from peerstep.agent import Trajectory, TrajectoryState
from peerstep.steplog import StepKind

# a forced answer gets this many model calls before the trajectory is given up
FORCED_GRACE = 3


S = TypeVar("S")
R = TypeVar("R")


def thin(step: Callable[[S], Awaitable[R]]) -> Callable[[S], Awaitable[R]]:
    """``step`` as a graph node LangGraph can inspect cheaply.

    At compile time LangGraph disassembles every node function to look for subgraphs it calls; for the large
    reason/act methods that took about 30 ms per run, paid before a chat turn's first token (bench/chat_latency.py).
    A one-line wrapper is disassembled instead, in microseconds; a bound method found in its closure is not
    searched further.
    """

    async def node(state: S) -> R:
        return await step(state)

    return node


def build_react_graph(trajectory: Trajectory) -> Any:
    """Compile the reason/act loop for one trajectory runtime (resources live in ``trajectory``, not state)."""

    def round_over(state: TrajectoryState) -> bool:
        return (state["steps"] >= state.get("round_end_steps", 10**9)
                or state["tokens"] >= state.get("round_end_tokens", 10**12))

    def entry(state: TrajectoryState) -> str:
        if state.get("done"):
            return END
        if state.get("action"):  # a fork from a reply whose calls had not run yet: run them first
            return "act"
        return "force" if state.get("force_reason") and not state.get("forced") else "reason"

    async def force(state: TrajectoryState) -> TrajectoryState:
        forced = trajectory.force(state, str(state.get("force_reason")))
        return {"messages": forced["messages"], "forced": True, "last_step_id": forced["last_step_id"],
                "force_reason": None}

    def after_reason(state: TrajectoryState) -> str:
        return END if state.get("done") else "act"

    def after_act(state: TrajectoryState) -> str:
        if state.get("done"):
            return END
        if state.get("action"):  # act queued a call of its own (a program's printed answer): run it
            return "act"
        if state.get("forced") and state.get("forced_calls", 0) >= FORCED_GRACE:
            return "give_up"
        if round_over(state) and not state.get("forced"):
            return END  # yield to the barrier; a forced answer is finished within the round
        return "reason"

    async def give_up(state: TrajectoryState) -> TrajectoryState:
        text = "the answer was forced and not given"
        trajectory.record(StepKind.ERROR, state["last_step_id"], text=text, data={"error": "no_answer"})
        return {"done": True, "error": text}

    graph: Any = StateGraph(TrajectoryState)  # the thin nodes are plain callables, which its overloads reject
    graph.add_node("reason", thin(trajectory.reason))
    graph.add_node("act", thin(trajectory.act))
    graph.add_node("give_up", thin(give_up))
    graph.add_node("force", thin(force))
    graph.add_conditional_edges(START, entry, ["force", "reason", "act", END])
    graph.add_edge("force", "reason")
    graph.add_conditional_edges("reason", after_reason, ["act", END])
    graph.add_conditional_edges("act", after_act, ["act", "reason", "give_up", END])
    graph.add_edge("give_up", END)
    return graph.compile()


class Loop:
    """A trajectory's compiled loop, run one round at a time. A failure retires the trajectory; only an interrupt
    (a decision asked of the caller) leaves ``run_round``.

    Run inside a checkpointed graph, the loop inherits its checkpointer: each reason and act step is a checkpoint
    of its own, so a resumed run continues from the last one instead of redoing the round.
    """

    def __init__(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self.graph = build_react_graph(trajectory)

    async def run_round(self, state: TrajectoryState, max_steps: int, max_tokens: int) -> TrajectoryState:
        budget = self.trajectory.config.budget.max_steps
        calls = min(max_steps, budget + 2) + FORCED_GRACE + 2  # the round, a forced answer and its grace
        state = {**state, "round_end_steps": state["steps"] + max_steps,
                 "round_end_tokens": state["tokens"] + max_tokens}
        last: TrajectoryState = state
        try:
            # streamed so that a failure mid-round keeps the steps (and token counts) the round already made
            async for values in self.graph.astream(state, {"recursion_limit": 2 * calls + 6}, stream_mode="values"):
                last = values
        except GraphBubbleUp:  # an interrupt (a decision asked of the caller) pauses the run; it is no failure
            raise
        except Exception as exc:  # one trajectory's failure must never fail its siblings
            text = f"trajectory {self.trajectory.trajectory_id} failed: {type(exc).__name__}: {exc}"
            self.trajectory.record(StepKind.ERROR, last.get("last_step_id"), text=text,
                                   data={"error": type(exc).__name__, "stage": "loop"})
            return {**last, "done": True, "error": text}
        return last
