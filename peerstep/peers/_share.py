"""One LeaP sharing block at a barrier: summarise every active trajectory (and each finished one, once), route,
inject into the active ones.

Summaries are requested for all active trajectories at once, so a batching server (vLLM)
serves them together. A summary is not added to its own trajectory's context (it would only
repeat what the trajectory already holds and cost tokens on every later call); only peers
see it. Every summary and every injection is a step in the log, with the router, the source
trajectories and their similarity scores.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Literal

from pydantic import BaseModel, Field, field_serializer

from peerstep._errors import PeerstepError
from peerstep.agent import TrajectoryState
from peerstep.agent._trajectory import Trajectory, wire_messages
from peerstep.peers._messages import SUMMARY_OPENER, SUMMARY_TRIGGER, clean_summary, comment_block, evidence_text
from peerstep.peers._routing import Router, get_router, router_name
from peerstep.steplog import StepKind, Usage


class SharingConfig(BaseModel):
    router: str | Router = Field(default="dispersed", description="a name in peerstep.registry.ROUTERS (dispersed, "
                                 "clustered, hybrid, random, all) or a function (me, summaries, k, rng) -> route")
    top_k: int = Field(default=2, ge=1, description="peer summaries each trajectory receives")
    summary_tokens: int = Field(default=256, ge=16)
    mode: Literal["auto", "continue", "turn"] = Field(
        default="auto",
        description="'continue' extends a partial assistant message (vLLM continue_final_message); 'turn' asks "
        "in a new user turn (any OpenAI-compatible server); 'auto' picks 'continue' when the server supports it.",
    )
    seed: int = 0
    evidence: bool = Field(default=False, description="show each routed peer's last computation (the code or "
                           "expression and what it printed, from its step log) under its summary, and ask the "
                           "reader to re-run a disagreeing claim with a tool rather than adopt it")
    switch_needs_rerun: bool = Field(default=False, description="a trajectory that changes its answer after "
                                     "reading peers votes with the number its own program printed before the "
                                     "first comment, unless one of its tools printed the new answer after it "
                                     "(peerstep.peers.voting_answer)")

    @field_serializer("router")
    def _router_name(self, router: str | Router) -> str:  # a function is logged (and checkpointed) by name
        return router_name(router)


async def summarize(traj: Trajectory, state: TrajectoryState, config: SharingConfig) -> tuple[str, str]:
    """Ask one trajectory for its conclusions; returns (summary, step id of the SUMMARY record)."""
    use_continue = config.mode == "continue" or (config.mode == "auto" and traj.client.supports_continue)
    messages = wire_messages(state["messages"])
    extra: dict[str, object] = {}
    if use_continue:
        messages.append({"role": "assistant", "content": SUMMARY_OPENER})
        extra = {"continue_final_message": True, "add_generation_prompt": False}
    else:
        messages.append({"role": "user", "content": SUMMARY_TRIGGER})
    params = traj.config.sampling.model_copy(update={
        "max_tokens": config.summary_tokens, "stop": ["</summarize>"], "extra_body": {**extra},
        "logprobs": False})
    completion = (await traj.client.chat(messages, sampling=params))[0]
    summary, cut = clean_summary(completion.text, opener_used=use_continue)
    rec = traj.record(StepKind.SUMMARY, state["last_step_id"], text=summary, finish_reason=completion.finish_reason,
                      usage=Usage(prompt_tokens=completion.prompt_tokens,
                                  completion_tokens=completion.completion_tokens),
                      latency_s=completion.latency_s, model=completion.model or traj.client.model,
                      data={"cut_off": cut, "mode": "continue" if use_continue else "turn"})
    return summary, rec.step_id


def last_computation(traj: Trajectory) -> str | None:
    """A trajectory's last successful tool call as ``evidence_text`` shows it (None if it ran none), from its step
    log: what the model ran, not what it says it ran. A fork's log lacks its parent's calls."""
    answered = [(call.tool, result.text) for call, result in traj.tool_results()
                 if call is not None and call.tool is not None]
    if not answered:
        return None
    tool, output = answered[-1]
    args = tool.arguments
    source = next(iter(args.values())) if isinstance(args, dict) and len(args) == 1 else args
    return evidence_text(tool.name, source if isinstance(source, str) else json.dumps(source), output or "")


async def share(
    trajectories: dict[int, Trajectory],
    states: dict[int, TrajectoryState],
    config: SharingConfig,
    round_index: int,
) -> dict[int, TrajectoryState]:
    """Run one sharing block; returns the updated states of the active trajectories (and of newly summarised
    finished ones, which keep their summary).

    Every active trajectory is summarised afresh. A finished trajectory (not pruned, not failed) is summarised
    once, the first barrier after it finishes, and its summary is offered at every later barrier: a conclusion
    reached is the thing an active peer most needs to hear. Seen on the real model: two of three trajectories
    submitted a head-computed answer in their first reply, and the third, still working, was told "no peers".
    """
    active = [tid for tid, st in sorted(states.items()) if not st.get("done")]
    if not active:
        return {}
    finished = [tid for tid, st in sorted(states.items()) if st.get("done") and not st.get("error")]
    kept: dict[int, str] = {tid: text for tid in finished if (text := states[tid].get("summary"))}
    # a lone trajectory with no finished peer has nobody to tell: no summary is written, it is told to continue
    alone = len(active) + len(finished) < 2
    to_summarize = [] if alone else [*active, *(tid for tid in finished if tid not in kept)]
    router: Router = get_router(config.router)
    rng = random.Random(config.seed * 1000 + round_index)

    async def one(tid: int) -> tuple[int, str | None, str | None]:
        try:
            summary, step_id = await summarize(trajectories[tid], states[tid], config)
            return tid, summary, step_id
        except PeerstepError as exc:  # a failed summary costs this trajectory its voice, nothing more
            trajectories[tid].record(StepKind.ERROR, states[tid]["last_step_id"], text=f"summary failed: {exc}",
                                     data={"error": type(exc).__name__, "stage": "summary"})
            return tid, None, None

    results = await asyncio.gather(*(one(tid) for tid in to_summarize))
    summaries = {**kept, **{tid: text for tid, text, _ in results if text is not None}}
    summary_step = {tid: step for tid, _, step in results if step is not None}
    updated: dict[int, TrajectoryState] = {tid: {**states[tid], "summary": summaries[tid]}
                                           for tid in finished if tid not in kept and tid in summaries}
    for tid in active:
        route = router(tid, summaries, config.top_k, rng) if tid in summaries else []
        peers_text = [summaries[p] for p, _ in route]
        evidence = [last_computation(trajectories[p]) for p, _ in route] if config.evidence else None
        block = comment_block(peers_text, evidence)
        parent = summary_step.get(tid, states[tid]["last_step_id"])
        rec = trajectories[tid].record(
            StepKind.PEER_INJECT, parent, text=block,
            data={"router": router_name(config.router), "round": round_index, "top_k": config.top_k,
                  "sources": [p for p, _ in route], "similarities": [round(s, 4) for _, s in route]})
        st = states[tid]
        updated[tid] = {**st, "messages": [*st["messages"], {"role": "user", "content": block}],
                        "last_step_id": rec.step_id}
    return updated
