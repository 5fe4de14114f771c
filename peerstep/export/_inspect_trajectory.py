"""One trajectory's step records as Inspect AI messages and events (the conversation the model saw, and what ran).

Read in log order, each record adds to its trajectory: ``run_start`` opens the conversation (system prompt,
question), ``reason`` is a model call (a ``ModelEvent`` whose input is the conversation so far, and the assistant
message with the tool calls the model made, found as the ``tool_call`` records under it), ``tool_call`` and
``observation`` are a ``ToolEvent`` and the ``ChatMessageTool`` answering the call, ``summary`` is the LeaP summary
request (a model call outside the conversation: peerstep never adds a summary to its own trajectory),
``peer_inject`` is the user turn carrying the peers' summaries plus an info event naming its sources, ``verify``
is an intermediate score, ``budget``, ``prune``, ``error`` and ``final`` are info events. Inspect has no event for
"another agent's words reached this one", so the peer exchange is an info event with the routing data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

from inspect_ai.event import Event, InfoEvent, ModelEvent, ScoreEvent, SpanBeginEvent, SpanEndEvent, ToolEvent
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    StopReason,
)
from inspect_ai.scorer import Score
from inspect_ai.tool import ToolCall, ToolCallError, ToolInfo

from peerstep.agent._prompts import force_final
from peerstep.peers._messages import SUMMARY_OPENER, SUMMARY_TRIGGER
from peerstep.steplog import StepKind, StepRecord

_STOP: dict[str, StopReason] = {"stop": "stop", "length": "max_tokens", "tool_calls": "tool_calls",
                                "content_filter": "content_filter"}


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def generate_config(sampling: dict[str, Any] | None) -> GenerateConfig:
    """peerstep's sampling parameters as Inspect's ``GenerateConfig`` (``min_p`` has no field: it goes to
    ``extra_body``, as it does on the wire)."""
    s = sampling or {}
    extra = dict(s.get("extra_body") or {})
    if s.get("min_p") is not None:
        extra["min_p"] = s["min_p"]
    return GenerateConfig(temperature=s.get("temperature"), top_p=s.get("top_p"), max_tokens=s.get("max_tokens"),
                          stop_seqs=s.get("stop") or None, seed=s.get("seed"), top_k=s.get("top_k"),
                          logprobs=s.get("logprobs") or None, top_logprobs=s.get("top_logprobs"),
                          extra_body=extra or None)


def usage_of(record: StepRecord) -> ModelUsage:
    u = record.usage
    if u is None:
        return ModelUsage()
    return ModelUsage(input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens,
                      total_tokens=u.prompt_tokens + u.completion_tokens)


def add_usage(into: dict[str, ModelUsage], model: str, usage: ModelUsage) -> None:
    into[model] = into[model] + usage if model in into else usage


@dataclass
class Trajectory:
    """What one trajectory said and did, as Inspect messages and events."""

    tid: int
    started: float
    model: str
    span_id: str | None  # None for the run-level records (barriers, the vote): they sit outside every trajectory
    messages: list[ChatMessage] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    usage: dict[str, ModelUsage] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    answer: str | None = None
    reward: float | None = None
    final: dict[str, Any] | None = None
    error: str | None = None
    pruned: bool = False
    model_calls: int = 0
    ended: float = 0.0
    _tool_events: dict[str, ToolEvent] = field(default_factory=dict)  # by tool_call step id and by call id


class TrajectoryBuilder:
    """Feeds a run's records, in log order, into per-trajectory :class:`Trajectory` objects."""

    def __init__(self, records: list[StepRecord], sample_start: float, model: str) -> None:
        self.sample_start = sample_start
        self.model = model
        self.calls_by_parent: dict[str, list[StepRecord]] = {}
        for r in records:
            if r.kind is StepKind.TOOL_CALL and r.parent_id:
                self.calls_by_parent.setdefault(r.parent_id, []).append(r)
        self.trajectories: dict[int, Trajectory] = {}

    def _traj(self, r: StepRecord) -> Trajectory:
        t = self.trajectories.get(r.trajectory_id)
        if t is None:
            t = Trajectory(tid=r.trajectory_id, started=r.created_at, model=r.model or self.model,
                           span_id=f"trajectory-{r.trajectory_id}" if r.trajectory_id >= 0 else None)
            self.trajectories[r.trajectory_id] = t
        t.ended = max(t.ended, r.created_at)
        return t

    def finish(self) -> list[Event]:
        """The events: each trajectory's, whole, inside its span (in trajectory order), then the run-level ones.

        Trajectories ran side by side, but Inspect's viewer nests a span that opens inside another one under it:
        interleaved in time, trajectory 1 would read as a sub-agent of trajectory 0. The timestamps keep the
        real timing, so the viewer's timeline still draws them in parallel.
        """
        out: list[Event] = []
        for tid, t in sorted(self.trajectories.items()):
            if t.span_id is None:
                continue
            out.append(SpanBeginEvent(id=t.span_id, name=f"trajectory {tid}", type="agent",
                                      timestamp=utc(t.started),
                                      working_start=max(0.0, t.started - self.sample_start)))
            out.extend(t.events)
            out.append(SpanEndEvent(id=t.span_id, timestamp=utc(t.ended),
                                    working_start=max(0.0, t.ended - self.sample_start)))
        run_level = self.trajectories.get(-1)
        return out + (run_level.events if run_level is not None else [])

    def _base(self, t: Trajectory, r: StepRecord, start: float | None = None) -> dict[str, Any]:
        at = r.created_at if start is None else start
        return {"uuid": r.step_id, "span_id": t.span_id, "timestamp": utc(at),
                "working_start": max(0.0, at - self.sample_start)}

    def _info(self, t: Trajectory, r: StepRecord, source: str, data: dict[str, Any]) -> None:
        payload = {k: v for k, v in {"text": r.text, **data}.items() if v is not None}
        t.events.append(InfoEvent(source=source, data=payload, **self._base(t, r)))

    def add(self, r: StepRecord) -> None:
        t = self._traj(r)
        handler = getattr(self, f"_on_{r.kind.value}", None)
        if handler is not None:
            handler(t, r)

    def _on_run_start(self, t: Trajectory, r: StepRecord) -> None:
        t.tools = [str(name) for name in r.data.get("tools") or []]
        if r.data.get("system_prompt"):
            t.messages.append(ChatMessageSystem(content=r.data["system_prompt"], source="input"))
        t.messages.append(ChatMessageUser(content=r.text or "", source="input"))

    def _model_event(self, t: Trajectory, r: StepRecord, conversation: list[ChatMessage],
                     reply: ChatMessageAssistant, role: str | None = None) -> None:
        model = r.model or t.model
        usage = usage_of(r)
        add_usage(t.usage, model, usage)
        t.model_calls += 1
        latency = r.latency_s or 0.0
        output = ModelOutput(model=model, usage=usage, time=r.latency_s,
                             choices=[ChatCompletionChoice(message=reply,
                                                           stop_reason=_STOP.get(r.finish_reason or "", "unknown"))])
        meta = {k: v for k, v in {"step_id": r.step_id, "finish_reason": r.finish_reason,
                                  "mean_logprob": r.mean_logprob, **r.data}.items() if v is not None}
        t.events.append(ModelEvent(
            model=model, role=role, input=conversation, tools=[ToolInfo(name=n, description=n) for n in t.tools],
            tool_choice="auto" if t.tools else "none", config=generate_config(r.sampling), output=output,
            completed=utc(r.created_at), working_time=r.latency_s, metadata=meta,
            **self._base(t, r, start=r.created_at - latency)))

    def _on_reason(self, t: Trajectory, r: StepRecord) -> None:
        calls = [ToolCall(id=c.tool.call_id or f"call-{c.step_id}", function=c.tool.name,
                          arguments=c.tool.arguments if isinstance(c.tool.arguments, dict)
                          else {"arguments": c.tool.arguments})
                 for c in self.calls_by_parent.get(r.step_id, []) if c.tool is not None]
        reply = ChatMessageAssistant(id=r.step_id, content=r.text or "", model=r.model or t.model,
                                     tool_calls=calls or None, source="generate")
        self._model_event(t, r, list(t.messages), reply)
        t.messages.append(reply)

    def _on_tool_call(self, t: Trajectory, r: StepRecord) -> None:
        if r.tool is None:
            return
        call_id = r.tool.call_id or f"call-{r.step_id}"
        args = cast(dict[str, Any], r.tool.arguments if isinstance(r.tool.arguments, dict)
                    else {"arguments": r.tool.arguments})
        event = ToolEvent(id=call_id, function=r.tool.name, arguments=args, **self._base(t, r),
                          metadata={"source": r.tool.source} if r.tool.source else None)
        t.events.append(event)
        t._tool_events[r.step_id] = event
        t._tool_events[call_id] = event

    def _on_observation(self, t: Trajectory, r: StepRecord) -> None:
        tool = r.tool
        output = (tool.output if tool and tool.output is not None else r.text) or ""
        event = t._tool_events.get(r.parent_id or "") or (t._tool_events.get(tool.call_id or "") if tool else None)
        if event is None:  # an observation no call asked for (the answer policy's nudge, an environment's message)
            t.messages.append(ChatMessageUser(id=r.step_id, content=output, source="input",
                                              metadata={"peerstep": "observation", **r.data}))
            return
        error = None
        if tool is not None and (tool.ok is False or tool.timed_out):
            error = ToolCallError("timeout" if tool.timed_out else "unknown", output)
        message = ChatMessageTool(id=r.step_id, content=output, tool_call_id=event.id, function=event.function,
                                  error=error)
        event.result, event.error, event.message_id = output, error, message.id
        event.completed, event.working_time = utc(r.created_at), tool.latency_s if tool else None
        event.failed = True if error is not None else None
        t.messages.append(message)

    def _on_summary(self, t: Trajectory, r: StepRecord) -> None:
        ask: ChatMessage = (ChatMessageAssistant(content=SUMMARY_OPENER) if r.data.get("mode") == "continue"
                            else ChatMessageUser(content=SUMMARY_TRIGGER))
        reply = ChatMessageAssistant(id=r.step_id, content=r.text or "", model=r.model or t.model,
                                     source="generate")
        self._model_event(t, r, [*t.messages, ask], reply, role="peer summary")

    def _on_peer_inject(self, t: Trajectory, r: StepRecord) -> None:
        t.messages.append(ChatMessageUser(id=r.step_id, content=r.text or "", source="input",
                                          metadata={"peerstep": "peer_inject", **r.data}))
        self._info(t, r, "peer exchange", {"to_trajectory": t.tid, "from_trajectories": r.data.get("sources"),
                                           **r.data})

    def _on_verify(self, t: Trajectory, r: StepRecord) -> None:
        score = Score(value=r.data.get("score", 0.0), explanation=r.text,
                      metadata={"step_scores": r.data.get("step_scores"), "partial": r.data.get("partial")})
        t.events.append(ScoreEvent(score=score, intermediate=True, scorer=str(r.data.get("verifier", "verifier")),
                                   **self._base(t, r)))

    def _on_budget(self, t: Trajectory, r: StepRecord) -> None:
        self._info(t, r, "budget", r.data)
        if "steps" in r.data:  # the budget ran out: the trajectory was asked for its answer in a user turn
            finish = "submit_answer" if "submit_answer" in t.tools else None
            t.messages.append(ChatMessageUser(id=r.step_id, content=force_final(finish), source="input"))

    def _on_prune(self, t: Trajectory, r: StepRecord) -> None:
        t.pruned = True
        self._info(t, r, "prune", r.data)

    def _on_error(self, t: Trajectory, r: StepRecord) -> None:
        t.error = r.text or str(r.data.get("error"))
        self._info(t, r, "error", r.data)

    def _on_final(self, t: Trajectory, r: StepRecord) -> None:
        t.answer, t.reward, t.final = r.text, r.reward, dict(r.data)
        self._info(t, r, "final answer", {"trajectory": t.tid, "reward": r.reward, **r.data})

    def _on_barrier(self, t: Trajectory, r: StepRecord) -> None:
        self._info(t, r, "barrier", r.data)

    def _on_aggregate(self, t: Trajectory, r: StepRecord) -> None:
        self._info(t, r, "vote", r.data)

    def _on_resume(self, t: Trajectory, r: StepRecord) -> None:
        self._info(t, r, "resume", r.data)
