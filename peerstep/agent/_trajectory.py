"""One trajectory's reason and act steps: the logic the reason/act loop's nodes run.

The loop itself (``peerstep.graphs.react``) is the only place that sequences these steps; every
strategy runs it, between barriers. Every step is written to the step log before the node
returns, so a crash or SIGKILL loses at most the step in flight.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from typing import Any

from langgraph.types import interrupt

from peerstep._errors import PeerstepError
from peerstep.agent._approval import ApprovalDecision, ApprovalRequest, Approver, rejection_text
from peerstep.agent._config import AgentConfig
from peerstep.agent._context import estimate, fold
from peerstep.agent._policy import decide, program_answer
from peerstep.agent._prompts import (
    ONE_CALL_NOTE,
    PROGRAM_PROMPT,
    force_final,
    no_call_hint,
    repeat_note,
    system_prompt,
    tool_result_message,
)
from peerstep.agent._state import TrajectoryState
from peerstep.client import Completion, ModelClient
from peerstep.client._parsing import ParsedCall, cut_after, outside_fences, parse_tool_calls
from peerstep.environments._base import NO_TOOL_CALLS, Environment, call_arguments
from peerstep.grading import parse_number, stated_answer
from peerstep.steplog import StepKind, StepLog, StepRecord, ToolInfo, Usage
from peerstep.steplog._records import is_tool_result
from peerstep.tools._base import Tool

Listener = Callable[[StepRecord], None]
TokenSink = Callable[[int, str], None]
_WIRE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")
MAX_REPEATS = 3  # an identical call made this many times forces the final answer
# How much of a tool result the loop keeps as its candidate answer (``last_result``: quoted back to the model in a
# nudge, read for the number a reply restates) and of the answer it submits itself when a forced reply called no
# tool. Not grading's ``MAX_ANSWER_CHARS`` (2000: how much of any answer a checker reads, a bound on grading time):
# this is text the loop puts back into the model's context or answers with on its behalf, so it is kept tighter.
MAX_FALLBACK_ANSWER_CHARS = 500
CONTEXT_MARGIN = 64  # tokens kept free beyond the reply's max_tokens: the estimate is not exact
APPROVAL_KIND = "approve_tool_call"  # the interrupt payload's kind: an ApprovalRequest, one per call
ENDED = "ended by the person at an approval"
PAST = {"approve": "approved", "edit": "edited", "reject": "rejected", "end": "ended"}


def edited_note(call: dict[str, Any]) -> str:
    """Told to the model with the result of a call the person edited: what actually ran."""
    return (f"(Note: the person edited this call before it ran; it ran with the arguments "
            f"{call['function']['arguments']}.)")


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as sent to the server: only OpenAI keys (``info`` and friends stay local)."""
    return [{k: m[k] for k in _WIRE_KEYS if k in m} for m in messages]


class Trajectory:
    """Runtime of one trajectory: its model client, environment, step log and listeners."""

    def __init__(
        self,
        client: ModelClient,
        env: Environment,
        log: StepLog,
        config: AgentConfig | None = None,
        *,
        trajectory_id: int = 0,
        episode_id: str = "0",
        listeners: list[Listener] | None = None,
        on_token: TokenSink | None = None,
        approver: Approver | None = None,
    ) -> None:
        """``approver`` decides the calls the approval policy asks about, inline; without one they pause the run."""
        self.client = client
        self.env = env
        self.log = log
        self.config = config or AgentConfig()
        self.trajectory_id = trajectory_id
        self.episode_id = episode_id
        self.listeners = list(listeners or [])
        self.on_token = on_token
        self.approver = approver
        self.tools: list[Tool] = []
        # runtime notes for the model, sent before its next call (not state: they concern this process's resources)
        self.notices: list[str] = []

    # --- logging -----------------------------------------------------------------------------
    def record(self, kind: StepKind, parent: str | None, **fields: Any) -> StepRecord:
        rec = self.log.append(StepRecord(run_id=self.log.run_id, episode_id=self.episode_id,
                                         trajectory_id=self.trajectory_id, parent_id=parent, kind=kind, **fields))
        for listener in self.listeners:
            listener(rec)
        return rec

    # --- steps -------------------------------------------------------------------------------
    async def start(self) -> TrajectoryState:
        """Reset the environment and build the opening state."""
        messages, tools = await self.env.reset()
        self.tools = tools
        prompt = self.config.system_prompt or system_prompt(tools, self.finish_tool)
        opening = [{"role": "system", "content": prompt}, *messages]
        rec = self.record(StepKind.RUN_START, None, text=messages[-1].get("content") if messages else None,
                          data={"tools": [t.name for t in tools], "system_prompt": prompt,
                                "tool_schemas": [t.schema() for t in tools]})
        for msg in messages:  # an environment that failed to reset says so in its opening messages
            info = msg.get("info") or {}
            if info.get("ok") is False and info.get("error"):
                self.record(StepKind.ERROR, rec.step_id, text=str(info["error"]),
                            data={"error": str(info["error"]).split(":", 1)[0], "stage": info.get("stage", "reset")})
        return TrajectoryState(trajectory_id=self.trajectory_id, messages=opening, opening=len(opening),
                               action=None, native_calls=False,
                               steps=0, tokens=0, started_at=time.time(), forced=False, last_step_id=rec.step_id,
                               done=False, answer=None, reward=None, error=None, seen_calls=[], stated_answer=None,
                               last_result=None, tools_used=0, nudged=[], idle=0, forced_calls=0)

    async def reattach(self) -> None:
        """Reset a new environment for a trajectory resumed from a checkpoint: its tools, but no new steps (the
        conversation is in the checkpoint, the opening steps are in the log)."""
        _, self.tools = await self.env.reset()

    @property
    def finish_tool(self) -> str | None:
        """The environment's finishing tool, when it offers one."""
        name = getattr(self.env, "finish_tool", "submit_answer")
        return name if any(t.name == name for t in self.tools) else None

    def tool_results(self) -> list[tuple[StepRecord | None, StepRecord]]:
        """This trajectory's successful tool results in order (the finishing call and failed calls left out), each
        with the call record that asked for it (None when the log lacks it), read from the step log: what the tools
        returned, not what the model says they returned. What a tool-backed vote and a peer's evidence rest on. A
        fork's log lacks its parent's steps."""
        calls: dict[str, StepRecord] = {}
        results: list[tuple[StepRecord | None, StepRecord]] = []
        for rec in self.log.records(self.trajectory_id):
            tool = rec.tool
            if tool is None or tool.name == self.finish_tool:
                continue
            if rec.kind == StepKind.TOOL_CALL and tool.call_id:
                calls[tool.call_id] = rec
            elif is_tool_result(rec, self.finish_tool):
                results.append((calls.get(tool.call_id) if tool.call_id else None, rec))
        return results

    def finish_call(self, answer: str, source: str) -> ParsedCall:
        """A call of the finishing tool with ``answer`` as its answer argument (``answer`` or its only one)."""
        name = self.finish_tool or "submit_answer"
        tool = next((t for t in self.tools if t.name == name), None)
        params = list(tool.schema()["function"]["parameters"].get("properties", {})) if tool else []
        arg = "answer" if "answer" in params or not params else params[0]
        return ParsedCall(name=name, arguments={arg: answer}, source=source)

    def _budget_reason(self, state: TrajectoryState) -> str | None:
        b = self.config.budget
        if state["steps"] >= b.max_steps:
            return f"max_steps ({b.max_steps}) reached"
        if state["tokens"] >= b.max_tokens:
            return f"max_tokens ({b.max_tokens}) reached"
        if time.time() - state["started_at"] >= b.wall_time_s:
            return f"wall time ({b.wall_time_s:g} s) reached"
        return None

    def _printed_answer(self, state: TrajectoryState, action: dict[str, Any], calls: list[dict[str, Any]],
                        observations: list[dict[str, Any]]) -> str | None:
        """The answer a just-run program printed, when ``answer_from_output`` applies: the opening is the
        program-first prompt ("prints only the final answer"), the reply was that program and nothing else (a
        fenced block; words around it, "Let me compute x first", announce a step, not the answer), it ran, and
        its output is one number (``program_answer``)."""
        opening = state["messages"][0].get("content") if state.get("messages") else None
        if (not self.config.answer_from_output or state.get("forced") or self.finish_tool is None
                or len(calls) != 1 or calls[0]["function"]["name"] != "python"
                or (action.get("sources") or {}).get(calls[0]["id"]) != "code_block"
                or outside_fences(str(action.get("content") or "")).strip()
                or not (isinstance(opening, str) and opening.startswith(PROGRAM_PROMPT))):
            return None
        results = [o for o in observations if o.get("role") == "tool" and o.get("tool_call_id") == calls[0]["id"]]
        if len(results) != 1 or (results[0].get("info") or {}).get("ok") is False:
            return None
        return program_answer(str(results[0].get("content") or ""))

    def force(self, state: TrajectoryState, why: str) -> TrajectoryState:
        """Log the budget event and ask for the final answer now; the next ``reason`` is constrained to it."""
        rec = self.record(StepKind.BUDGET, state["last_step_id"], text=why,
                          data={"steps": state["steps"], "tokens": state["tokens"]})
        return {**state, "forced": True, "last_step_id": rec.step_id,
                "messages": [*state["messages"], {"role": "user", "content": force_final(self.finish_tool)}]}

    def _fit(self, state: TrajectoryState, messages: list[dict[str, Any]],
             parent: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Fold the oldest tool outputs when the conversation and a full reply would not fit the window (logged)."""
        assert self.config.context_tokens is not None
        budget = self.config.context_tokens - self.config.sampling.max_tokens - CONTEXT_MARGIN
        if estimate(messages) <= budget:
            return messages, parent
        messages, folded = fold(messages, budget, start=state.get("opening", 2))
        if folded:
            parent = self.record(StepKind.BUDGET, parent, text=f"context: {folded} old tool output(s) folded to fit "
                                 f"the {self.config.context_tokens:,}-token window", data={"context_folded": folded,
                                 "estimate": estimate(messages)}).step_id
        return messages, parent

    async def reason(self, state: TrajectoryState) -> TrajectoryState:
        """One model call; the reply becomes the pending action (tool calls, or what the answer policy says)."""
        parent = state["last_step_id"]
        messages = list(state["messages"])
        forced = state["forced"]
        if self.notices:  # said once, before the next call (e.g. the sandbox was rebuilt on resume)
            text = " ".join(self.notices)
            self.notices = []
            messages.append({"role": "user", "content": text})
            parent = self.record(StepKind.OBSERVATION, parent, text=text, data={"notice": True}).step_id
        if not forced and (why := self._budget_reason(state)):
            forced_state = self.force(state, why)
            forced, parent, messages = True, forced_state["last_step_id"], list(forced_state["messages"])
        if self.config.context_tokens:
            messages, parent = self._fit(state, messages, parent)
        tool_names = [t.name for t in self.tools]
        finish = self.finish_tool
        tool_choice: Any = None
        if forced and finish:
            tool_choice = {"type": "function", "function": {"name": finish}}
        elif self.config.tool_choice == "required":
            tool_choice = "required"
        schemas = [t.schema() for t in self.tools] if (self.config.native_tools or tool_choice) else None
        sampling = self.config.sampling
        on_token = None
        if self.on_token is not None:
            sink, tid = self.on_token, self.trajectory_id
            on_token = lambda _i, delta: sink(tid, delta)  # noqa: E731
        try:
            completion: Completion = (await self.client.chat(
                wire_messages(messages), sampling=sampling, tools=schemas, tool_choice=tool_choice,
                on_token=on_token))[0]
        except PeerstepError as exc:
            self.record(StepKind.ERROR, parent, text=str(exc), data={"error": type(exc).__name__, "stage": "model"})
            return {"messages": messages, "forced": forced, "done": True, "error": str(exc)}

        parsed = parse_tool_calls(completion.text, completion.tool_calls, tool_names)
        calls = parsed.calls
        stated = stated_answer(completion.text) if completion.text else None
        data: dict[str, Any] = {"native_tool_calls": completion.tool_calls} if completion.tool_calls else {}
        if stated:
            data["stated_answer"] = stated
        rec = self.record(
            StepKind.REASON, parent, text=completion.text, finish_reason=completion.finish_reason,
            usage=Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens),
            mean_logprob=completion.mean_logprob, token_logprobs=completion.token_logprobs,
            latency_s=completion.latency_s, model=completion.model or self.client.model,
            sampling=sampling.model_dump(exclude_defaults=False), data=data,
        )
        update: TrajectoryState = {
            "forced": forced, "steps": state["steps"] + 1, "tokens": state["tokens"] + completion.completion_tokens,
            "stated_answer": stated or state.get("stated_answer"),
            "forced_calls": state.get("forced_calls", 0) + (1 if forced else 0)}
        policy: dict[str, Any] = {}
        if forced and finish and not any(c.name == finish for c in calls):
            # The server ignored the named tool_choice. Fall back to an answer the model has stated (now or
            # before), then to the last computed result, and only then to the reply's text: never a fresh guess.
            fallback = stated or state.get("stated_answer") or state.get("last_result") or completion.text.strip()
            calls = [self.finish_call(fallback[:MAX_FALLBACK_ANSWER_CHARS], "forced_fallback")]
        elif not calls and not parsed.error and finish:
            decision = decide(completion.text, policy=self.config.answer_policy, finish_tool=finish,
                              tool_names=tool_names, tools_used=state.get("tools_used", 0),
                              last_result=state.get("last_result"), nudged=list(state.get("nudged") or []),
                              idle=state.get("idle", 0))
            if decision.submit is not None:
                calls = [self.finish_call(decision.submit, "stated_answer")]
            else:
                policy = {"message": decision.message, "key": decision.key, "force": decision.force}
        update["idle"] = 0 if calls or policy.get("message") else state.get("idle", 0) + 1
        native = bool(completion.tool_calls)
        dropped = 0
        if not native and len(calls) > 1 and finish and (early := _submits_computed(calls, finish, state)):
            # The reply recomputes what a tool has already computed, then submits that result: the submission is
            # of a computed number, so it is taken now instead of rerunning each call in its own turn.
            dropped, calls = len(calls) - 1, [early]
        if not native and len(calls) > 1:
            # Calls written as text after the first were planned before seeing its result (small models
            # guess the intermediate numbers): run only the first, as the prompt asks.
            dropped, calls = len(calls) - 1, calls[:1]
        content = completion.text
        if not native and calls and calls[0].source in ("json_text", "code_block"):
            content = cut_after(completion.text, calls[0])
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if native:
            assistant["tool_calls"] = [c.openai() for c in calls]
        messages.append(assistant)
        last = rec.step_id
        for call in calls:
            last = self.record(StepKind.TOOL_CALL, rec.step_id, tool=ToolInfo(
                name=call.name, arguments=call.arguments, call_id=call.id, source=call.source)).step_id
        if parsed.error and not calls:
            self.record(StepKind.ERROR, rec.step_id, text=parsed.error, data={"error": "unparseable_tool_call"})
        action = {"role": "assistant", "content": content, "tool_calls": [c.openai() for c in calls],
                  "sources": {c.id: c.source for c in calls},
                  "parse_error": parsed.error, "dropped_calls": dropped, "policy": policy}
        return {**update, "messages": messages, "action": action, "native_calls": native, "last_step_id": last}

    async def _approvals(self, calls: list[dict[str, Any]]) -> list[tuple[dict[str, Any], ApprovalDecision, str]]:
        """The decision on each call the policy does not let run: (call, decision, why it was asked or rejected).

        One request per call, asked of the approver inline (the other trajectories run meanwhile) or, without one,
        by ``interrupt`` (the run pauses; one interrupt per call, matched to its answer by order on resume). Writes
        nothing: it runs again from the start when an interrupted node resumes. After an "end", nothing more is
        asked.
        """
        policy = self.config.approve
        if policy.allows_all:
            return []
        out = []
        for call in calls:
            name = call["function"]["name"]
            arguments = call_arguments(call)
            verdict, rule = policy.check(name, arguments, finish_tool=self.finish_tool)
            if verdict == "auto":
                continue
            why = rule.describe() if rule else f"default {policy.default}"
            if verdict == "reject":
                decision = ApprovalDecision(action="reject", by="policy",
                                            reason=(rule.reason if rule else "") or "the approval policy rejects it")
            else:
                request = ApprovalRequest(trajectory_id=self.trajectory_id, call_id=call["id"], tool=name,
                                          arguments=arguments, rule=why)
                if self.approver is not None:
                    answer = self.approver(request)
                    if inspect.isawaitable(answer):
                        answer = await answer
                else:
                    answer = interrupt({"kind": APPROVAL_KIND, **request.model_dump()})
                decision = ApprovalDecision.coerce(answer)
            out.append((call, decision, why))
            if decision.action == "end":
                break
        return out

    def _apply(self, decided: list[tuple[dict[str, Any], ApprovalDecision, str]], calls: list[dict[str, Any]],
               parent: str | None, messages: list[dict[str, Any]],
               native: bool) -> tuple[str | None, list[dict[str, Any]], set[str], bool]:
        """Log each decision as a step and tell the model about rejected calls (``messages`` grows in place).

        Returns the new parent step, the calls to run (edited ones with their new arguments), the ids of edited
        calls, and whether the person ended the trajectory (then nothing runs)."""
        by_id = {call["id"]: decision for call, decision, _ in decided}
        ended = any(d.action == "end" for d in by_id.values())
        for call, decision, why in decided:
            text = {"approve": f"approved by {decision.by or 'policy'}", "edit": f"edited by {decision.by}",
                    "reject": rejection_text(decision.reason), "end": ENDED}[decision.action]
            parent = self.record(StepKind.OBSERVATION, parent, text=text, data={
                "approval": PAST[decision.action], "by": decision.by or "policy", "rule": why,
                "call": {"id": call["id"], "name": call["function"]["name"], "arguments": call_arguments(call)},
                "edited": decision.arguments if decision.action == "edit" else None,
                "reason": decision.reason}).step_id
            if decision.action == "reject" and not ended:
                if native:  # every native call is answered by a tool message, or the next request is refused
                    messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"],
                                     "content": text})
                else:
                    messages.append({"role": "user", "content": text})
        if ended:
            return parent, [], set(), True
        run: list[dict[str, Any]] = []
        for call in calls:
            verdict = by_id.get(call["id"])
            if verdict is None or verdict.action == "approve":
                run.append(call)
            elif verdict.action == "edit":
                run.append({**call, "function": {**call["function"], "arguments": json.dumps(verdict.arguments)}})
        return parent, run, {c["id"] for c, d, _ in decided if d.action == "edit"}, False

    async def act(self, state: TrajectoryState) -> TrajectoryState:
        """Send the pending action to the environment and fold the observations into the conversation."""
        action = state["action"] or {}
        parent = state["last_step_id"]
        messages = list(state["messages"])
        calls = action.get("tool_calls") or []
        policy = action.get("policy") or {}
        if action.get("parse_error") and not calls:
            messages.append({"role": "user", "content": action["parse_error"]})
            rec = self.record(StepKind.OBSERVATION, parent, text=action["parse_error"], data={"format_error": True})
            return {"messages": messages, "action": None, "last_step_id": rec.step_id}
        if policy.get("message"):
            messages.append({"role": "user", "content": policy["message"]})
            rec = self.record(StepKind.OBSERVATION, parent, text=policy["message"], data={"policy": policy["key"]})
            return {"messages": messages, "action": None, "last_step_id": rec.step_id,
                    "nudged": [*(state.get("nudged") or []), policy["key"]]}
        if policy.get("force"):
            forced = self.force({**state, "messages": messages},
                                f"{state.get('idle', 0)} replies in a row without a tool call or an answer")
            return {"messages": forced["messages"], "action": None, "forced": True,
                    "last_step_id": forced["last_step_id"]}
        # Nothing is written before the decisions are in: on resume the node reruns from its start (LangGraph), so
        # an interrupt's steps are logged once, after it returned.
        decided = await self._approvals(calls)
        edited: set[str] = set()
        if decided:
            native = bool(state.get("native_calls"))
            parent, calls, edited, ended = self._apply(decided, calls, parent, messages, native)
            if ended:
                return {"messages": messages, "action": None, "last_step_id": parent, "done": True, "answer": None,
                        "error": ENDED}
            if not calls:  # every call was rejected: the model hears why and goes on
                return {"messages": messages, "action": None, "last_step_id": parent}
            action = {**action, "tool_calls": calls}
        try:
            observations, reward, done, truncated = await self.env.step(
                {k: action[k] for k in ("role", "content", "tool_calls")})
        except Exception as exc:  # an environment bug must not kill the run; it is logged and the run ends cleanly
            text = f"the environment failed: {type(exc).__name__}: {exc}"
            self.record(StepKind.ERROR, parent, text=text, data={"error": type(exc).__name__, "stage": "environment"})
            return {"messages": messages, "action": None, "done": True, "error": text}
        finish = getattr(self.env, "finish_tool", "submit_answer")
        if not calls:
            # the environment's neutral "no tool calls" (Aviary's words) becomes this agent's own hint, which
            # shows the call format its prompt teaches
            observations = [{**o, "content": no_call_hint([t.name for t in self.tools], self.finish_tool)}
                            if o.get("role") != "tool" and o.get("content") == NO_TOOL_CALLS else o
                            for o in observations]
        by_id = {c["id"]: c for c in calls}
        sources = action.get("sources") or {}
        seen = list(state.get("seen_calls") or [])
        last_result = state.get("last_result")
        tools_used = state.get("tools_used", 0)
        looping = False
        for obs in observations:
            info = obs.get("info") or {}
            call = by_id.get(obs.get("tool_call_id", ""))
            tool = None
            if call is not None:
                tool = ToolInfo(name=obs.get("name", ""), call_id=call["id"], output=obs.get("content"),
                                ok=info.get("ok"), latency_s=info.get("latency_s"),
                                timed_out=bool(info.get("timed_out")))
                if call["function"]["name"] != finish:
                    tools_used += 1
                    if info.get("ok") is not False and (obs.get("content") or "").strip():
                        last_result = str(obs["content"]).strip()[:MAX_FALLBACK_ANSWER_CHARS]
            if call is not None:
                signature = json.dumps([call["function"]["name"], call["function"]["arguments"]], sort_keys=True)
                if call["id"] in edited and obs.get("role") == "tool":
                    obs = {**obs, "content": f"{obs.get('content', '')}\n{edited_note(call)}"}
                if signature in seen and obs.get("role") == "tool":
                    obs = {**obs, "content": f"{obs.get('content', '')}{repeat_note(self.finish_tool)}"}
                    looping = seen.count(signature) >= MAX_REPEATS - 1
                seen.append(signature)
            parent = self.record(StepKind.OBSERVATION, parent, text=obs.get("content"), tool=tool).step_id
            if info.get("ok") is False and info.get("error"):
                # the environment itself failed (not the tool's own error text): log it as an error step
                self.record(StepKind.ERROR, parent, text=str(info["error"]),
                            data={"error": str(info["error"]).split(":", 1)[0],
                                  "stage": info.get("stage", "environment")})
            if obs.get("role") == "tool" and state.get("native_calls"):
                messages.append({k: obs[k] for k in ("role", "tool_call_id", "name", "content") if k in obs})
            elif obs.get("role") == "tool":
                messages.append({"role": "user", "content": tool_result_message(
                    obs.get("name", ""), call["function"]["arguments"] if call else "", obs.get("content", ""),
                    sources.get(call["id"]) if call else None)})
            else:
                messages.append({"role": obs.get("role", "user"), "content": obs.get("content", "")})
        if action.get("dropped_calls") and not done and messages and messages[-1]["role"] == "user":
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + ONE_CALL_NOTE}
        update: TrajectoryState = {"messages": messages, "action": None, "last_step_id": parent, "seen_calls": seen,
                                   "last_result": last_result, "tools_used": tools_used}
        if done or truncated:
            answer = getattr(self.env, "submitted", None) or _submitted_answer(calls, finish)
            final_reward = reward if self.env.scored else None
            rec = self.record(StepKind.FINAL, parent, text=answer, reward=final_reward, done=done,
                              data={"truncated": truncated, "gold": self.env.gold, "forced": state.get("forced"),
                                    "source": next(iter(sources.values()), None),
                                    "stated_answer": state.get("stated_answer"), "last_result": last_result})
            update.update({"done": True, "answer": answer, "reward": final_reward, "last_step_id": rec.step_id})
        elif (answer := self._printed_answer(state, action, calls, observations)) is not None:
            # the program printed the answer its opening asked for: submit it (the next act runs the call)
            call = self.finish_call(answer, "program_output")
            content = f"\\boxed{{{answer}}}"
            messages.append({"role": "assistant", "content": content})
            update["last_step_id"] = self.record(StepKind.TOOL_CALL, parent, tool=ToolInfo(
                name=call.name, arguments=call.arguments, call_id=call.id, source=call.source)).step_id
            update["action"] = {"role": "assistant", "content": content, "tool_calls": [call.openai()],
                                "sources": {call.id: call.source}, "parse_error": None, "dropped_calls": 0,
                                "policy": {}}
        elif looping and not state.get("forced"):
            # the same call a third time: the model is stuck, and more budget will not unstick it
            forced = self.force({**state, **update}, f"the same tool call was made {MAX_REPEATS} times")
            update.update({"messages": forced["messages"], "forced": True, "last_step_id": forced["last_step_id"]})
        return update


def _submitted_answer(calls: list[dict[str, Any]], finish_tool: str) -> str | None:
    for call in calls:
        if call["function"]["name"] == finish_tool:
            try:
                args = json.loads(call["function"]["arguments"])
            except json.JSONDecodeError:
                return str(call["function"]["arguments"])
            if isinstance(args, dict):  # "answer", or the only argument of a custom finishing tool
                return str(args["answer"] if "answer" in args else next(iter(args.values()), ""))
            return str(args)
    return None


def _submits_computed(calls: list[ParsedCall], finish: str, state: TrajectoryState) -> ParsedCall | None:
    """The finishing call among ``calls`` whose answer is the last tool result already seen, if there is one."""
    last = (state.get("last_result") or "").strip().splitlines()
    if not last:
        return None
    computed = parse_number(last[-1])
    for call in calls[1:]:
        if call.name == finish and isinstance(call.arguments, dict):
            answer = str(next(iter(call.arguments.values()), ""))
            value = parse_number(answer)
            if answer.strip() == last[-1].strip() or (value is not None and value == computed):
                return call
    return None
