"""A run's step records as OpenTelemetry spans: one trace per run, read from the step log alone.

The tree: the run span (OpenInference CHAIN) → one agent span per trajectory (``invoke_agent``, AGENT) → an LLM span
per model call (``chat``, reason and summary records) and a tool span per tool call (``execute_tool``, TOOL).
Barriers and the vote are spans under the run span; verifier scores are ``gen_ai.evaluation.result`` events on the
scored trajectory; a peer injection is a span whose links point at the summary spans of the trajectories it quotes.

Every span carries both the OTel GenAI semantic conventions (``gen_ai.*``) and OpenInference attributes, so
Phoenix, Langfuse, MLflow and Weave each find what they read. Times are the logged ones (a model call ends at its
record's ``created_at`` and lasts ``latency_s``), not the export's. Ids are derived from the run and step ids, so
exporting a run twice sends the same trace and span ids (backends that key on them keep one copy).

The spans are built as SDK ``ReadableSpan`` objects and handed straight to an exporter: no tracer, no global
provider, nothing left running.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from peerstep.registry import strategy_label
from peerstep.steplog import StepKind, StepRecord

SCOPE = InstrumentationScope("peerstep.export.otlp", "0.1.0")
MAX_TEXT = 32_000  # characters of one attribute value; backends cap far below a model's whole context anyway
LLM_KINDS = (StepKind.REASON, StepKind.SUMMARY)
EVENT_KINDS = (StepKind.PRUNE, StepKind.BUDGET, StepKind.ERROR, StepKind.RESUME)


def trace_id_of(run_id: str) -> int:
    """The trace id of a run: 128 bits of a hash of its id (never 0)."""
    return int.from_bytes(hashlib.sha256(f"peerstep-run:{run_id}".encode()).digest()[:16], "big") or 1


def span_id_of(run_id: str, key: str) -> int:
    """The span id of one thing of a run (a step id, ``run``, ``trajectory:N``): 64 bits of a hash (never 0)."""
    return int.from_bytes(hashlib.sha256(f"{run_id}/{key}".encode()).digest()[:8], "big") or 1


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT} more characters]"


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes OTLP can carry: no None values, dicts and mixed lists as JSON text."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            out[key] = value
        elif isinstance(value, str):
            out[key] = _text(value)
        elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            out[key] = [str(v) for v in value]
        elif isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
            out[key] = [int(v) for v in value]
        else:
            out[key] = _text(value)
    return out


class _Builder:
    """Collects the spans of one run; ``span`` makes one with the run's trace id and a derived span id."""

    def __init__(self, run_id: str, resource: Resource) -> None:
        self.run_id = run_id
        self.trace_id = trace_id_of(run_id)
        self.resource = resource
        self.spans: list[ReadableSpan] = []

    def context(self, key: str) -> SpanContext:
        return SpanContext(self.trace_id, span_id_of(self.run_id, key), is_remote=False,
                           trace_flags=TraceFlags(TraceFlags.SAMPLED))

    def span(self, key: str, name: str, parent: SpanContext | None, start: float, end: float,
             attrs: dict[str, Any], *, events: list[Event] | None = None, links: list[Link] | None = None,
             error: str | None = None, kind: SpanKind = SpanKind.INTERNAL) -> SpanContext:
        ctx = self.context(key)
        status = Status(StatusCode.ERROR, error[:500]) if error else Status(StatusCode.OK)
        self.spans.append(ReadableSpan(
            name=name, context=ctx, parent=parent, resource=self.resource, attributes=_clean(attrs),
            events=events or [], links=links or [], kind=kind, status=status, start_time=_ns(start),
            end_time=_ns(max(end, start)), instrumentation_scope=SCOPE))
        return ctx


def _usage(rec: StepRecord) -> dict[str, Any]:
    if rec.usage is None:
        return {}
    prompt, completion = rec.usage.prompt_tokens, rec.usage.completion_tokens
    return {"gen_ai.usage.input_tokens": prompt, "gen_ai.usage.output_tokens": completion,
            "llm.token_count.prompt": prompt, "llm.token_count.completion": completion,
            "llm.token_count.total": prompt + completion}


def _sampling(rec: StepRecord) -> dict[str, Any]:
    s = {k: v for k, v in (rec.sampling or {}).items() if v not in (None, {}, [])}
    if not s:
        return {}
    out: dict[str, Any] = {"llm.invocation_parameters": json.dumps(s, default=str)}
    for key, name in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                      ("max_tokens", "max_tokens"), ("seed", "seed")):
        if isinstance(s.get(key), int | float):
            out[f"gen_ai.request.{name}"] = s[key]
    if isinstance(s.get("stop"), list):
        out["gen_ai.request.stop_sequences"] = [str(x) for x in s["stop"]]
    return out


def _messages(prefix: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenInference's flattened messages: ``llm.input_messages.0.message.role`` and so on."""
    out: dict[str, Any] = {}
    for i, m in enumerate(messages):
        base = f"{prefix}.{i}.message"
        out[f"{base}.role"] = m["role"]
        if m.get("content") is not None:
            out[f"{base}.content"] = m["content"]
        if m.get("name"):
            out[f"{base}.name"] = m["name"]
        if m.get("tool_call_id"):
            out[f"{base}.tool_call_id"] = m["tool_call_id"]
        for j, call in enumerate(m.get("tool_calls", [])):
            out[f"{base}.tool_calls.{j}.tool_call.id"] = call.get("id")
            out[f"{base}.tool_calls.{j}.tool_call.function.name"] = call["name"]
            out[f"{base}.tool_calls.{j}.tool_call.function.arguments"] = _text(call.get("arguments", {}))
    return out


def _evaluation(rec: StepRecord) -> Event:
    d = rec.data
    score = d.get("score")
    attrs = _clean({"gen_ai.evaluation.name": str(d.get("verifier") or d.get("id") or d.get("name") or "verifier"),
                    "gen_ai.evaluation.score.value": float(score) if isinstance(score, int | float) else None,
                    "gen_ai.evaluation.score.label": d.get("label") or (None if score is None else str(score)),
                    "gen_ai.evaluation.explanation": d.get("rationale") or rec.text,
                    "peerstep.round": d.get("round")})
    return Event("gen_ai.evaluation.result", attributes=attrs, timestamp=_ns(rec.created_at))


def _record_event(rec: StepRecord) -> Event:
    return Event(f"peerstep.{rec.kind.value}", timestamp=_ns(rec.created_at),
                 attributes=_clean({"peerstep.text": rec.text, "peerstep.step_id": rec.step_id,
                                    "peerstep.data": rec.data or None}))


def run_spans(run_id: str, meta: dict[str, Any], records: list[StepRecord],
              resource: Resource | None = None) -> list[ReadableSpan]:
    """The spans of one run, the run span first (an empty list for a run with no records)."""
    # openinference.project.name: Phoenix files the traces under a project "peerstep" (others ignore it)
    b = _Builder(run_id, resource or Resource.create({"service.name": "peerstep",
                                                      "openinference.project.name": "peerstep"}))
    if not records:
        return []
    by_traj: dict[int, list[StepRecord]] = defaultdict(list)
    for rec in records:
        by_traj[rec.trajectory_id].append(rec)
    first = min(r.created_at - (r.latency_s or 0.0) for r in records)
    last = max(r.created_at for r in records)
    run_ctx = b.context("run")
    strategy, n = str(meta.get("strategy", "single")), meta.get("n", len([t for t in by_traj if t >= 0]) or 1)
    end_rec = next((r for r in reversed(records) if r.kind == StepKind.RUN_END), None)
    end_data = end_rec.data if end_rec else {}
    question = meta.get("question") or next((r.text for r in records if r.kind == StepKind.RUN_START), None)

    # Trajectories first, since the summary spans they hold are what peer injections link to.
    summary_ctx: dict[int, list[tuple[float, SpanContext]]] = defaultdict(list)
    traj_events: dict[int, list[Event]] = defaultdict(list)
    for rec in records:  # verifier scores land on the scored trajectory, wherever the record was filed
        if rec.kind == StepKind.VERIFY:
            target = rec.data.get("trajectory", rec.trajectory_id)
            traj_events[int(target) if isinstance(target, int) else rec.trajectory_id].append(_evaluation(rec))
    for tid in sorted(t for t in by_traj if t >= 0):
        _trajectory(b, tid, by_traj[tid], run_ctx, summary_ctx, traj_events[tid])
    for tid in sorted(t for t in by_traj if t >= 0):  # the links need every summary span's id and time
        _injections(b, tid, by_traj[tid], summary_ctx)

    run_events = [*traj_events.get(-1, [])]
    for rec in by_traj.get(-1, []):
        if rec.kind == StepKind.BARRIER:
            round_no = rec.data.get("round")
            b.span(rec.step_id, f"barrier round {round_no}", run_ctx, rec.created_at, rec.created_at, {
                "openinference.span.kind": "CHAIN", "peerstep.kind": "barrier", "peerstep.round": round_no,
                "peerstep.active": rec.data.get("active"), "peerstep.finished": rec.data.get("finished"),
                "output.value": rec.text, "peerstep.step_id": rec.step_id})
        elif rec.kind == StepKind.AGGREGATE:
            decision = rec.data.get("decision") or {}
            b.span(rec.step_id, f"aggregate {decision.get('method', 'vote')}", run_ctx, rec.created_at,
                   rec.created_at, {
                       "openinference.span.kind": "CHAIN", "peerstep.kind": "aggregate",
                       "input.value": json.dumps(decision.get("groups"), default=str) if decision else None,
                       "input.mime_type": "application/json" if decision else None,
                       "output.value": rec.text, "peerstep.decision": decision or None,
                       "peerstep.stop_reason": rec.data.get("stop_reason"), "peerstep.correct": rec.data.get("correct"),
                       "peerstep.gold": rec.data.get("gold"), "peerstep.step_id": rec.step_id})
        elif rec.kind in EVENT_KINDS:
            run_events.append(_record_event(rec))
    tokens = sum(r.usage.completion_tokens + r.usage.prompt_tokens for r in records if r.usage)
    error = end_data.get("error") or next((r.text for r in by_traj.get(-1, []) if r.kind == StepKind.ERROR), None)
    answer = end_rec.text if end_rec else meta.get("answer")
    b.span("run", f"peerstep {strategy_label(strategy, n)}", None, first, last, {
        "openinference.span.kind": "CHAIN", "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "peerstep", "gen_ai.conversation.id": run_id, "session.id": run_id,
        "gen_ai.request.model": meta.get("model"), "llm.model_name": meta.get("model"),
        "input.value": question, "output.value": answer if answer is not None else None,
        "llm.token_count.total": tokens, "peerstep.run_id": run_id, "peerstep.strategy": strategy,
        "peerstep.n": n, "peerstep.status": meta.get("status"), "peerstep.gold": meta.get("gold"),
        "peerstep.correct": end_data.get("correct", meta.get("correct")), "peerstep.rounds": end_data.get("rounds"),
        "peerstep.stop_reason": end_data.get("stop_reason"), "peerstep.dataset": meta.get("dataset"),
        "peerstep.task_id": meta.get("task_id"), "metadata": {k: meta.get(k) for k in (
            "strategy", "n", "dataset", "task_id", "engine", "base_url") if meta.get(k) is not None}},
        events=run_events, error=str(error) if error else None, kind=SpanKind.SERVER)
    b.spans.insert(0, b.spans.pop())  # the run span first
    return b.spans


def _trajectory(b: _Builder, tid: int, recs: list[StepRecord], run_ctx: SpanContext,
                summary_ctx: dict[int, list[tuple[float, SpanContext]]], events: list[Event]) -> None:
    """The agent span of trajectory ``tid`` and its LLM and tool spans."""
    ctx = b.context(f"trajectory:{tid}")
    start_rec = next((r for r in recs if r.kind == StepKind.RUN_START), None)
    messages: list[dict[str, Any]] = []
    if start_rec is not None:
        if start_rec.data.get("system_prompt"):
            messages.append({"role": "system", "content": start_rec.data["system_prompt"]})
        messages.append({"role": "user", "content": start_rec.text or ""})
    observations = {r.tool.call_id: r for r in recs if r.kind == StepKind.OBSERVATION and r.tool and r.tool.call_id}
    final: StepRecord | None = None
    error: str | None = None
    pending_calls: list[dict[str, Any]] = []
    made: dict[str, list[dict[str, Any]]] = defaultdict(list)  # the tool calls of each model call
    for rec in recs:
        if rec.kind == StepKind.TOOL_CALL and rec.tool is not None and rec.parent_id:
            made[rec.parent_id].append({"id": rec.tool.call_id, "name": rec.tool.name,
                                        "arguments": rec.tool.arguments})
    for rec in recs:
        if rec.kind in LLM_KINDS:
            _flush_assistant(messages, pending_calls)
            _llm(b, rec, ctx, messages, tid, made.get(rec.step_id, []))
            if rec.kind == StepKind.SUMMARY:
                summary_ctx[tid].append((rec.created_at, b.context(rec.step_id)))
            else:
                messages.append({"role": "assistant", "content": rec.text or ""})
        elif rec.kind == StepKind.TOOL_CALL and rec.tool is not None:
            pending_calls.append({"id": rec.tool.call_id, "name": rec.tool.name, "arguments": rec.tool.arguments})
            _tool(b, rec, observations.get(rec.tool.call_id or ""), ctx)
        elif rec.kind == StepKind.OBSERVATION:
            _flush_assistant(messages, pending_calls)
            messages.append({"role": "tool", "content": rec.text or "", "name": rec.tool.name if rec.tool else None,
                             "tool_call_id": rec.tool.call_id if rec.tool else None})
        elif rec.kind == StepKind.PEER_INJECT:
            messages.append({"role": "user", "content": rec.text or ""})
        elif rec.kind == StepKind.FINAL:
            final = rec
            events.append(_record_event(rec))
        elif rec.kind == StepKind.ERROR:
            error = rec.text or "error"
            events.append(_record_event(rec))
        elif rec.kind in EVENT_KINDS:
            events.append(_record_event(rec))
    start = min(r.created_at - (r.latency_s or 0.0) for r in recs)
    end = max(r.created_at for r in recs)
    fd = final.data if final else {}
    b.span(f"trajectory:{tid}", f"invoke_agent trajectory {tid}", run_ctx, start, end, {
        "openinference.span.kind": "AGENT", "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": f"trajectory {tid}", "gen_ai.agent.id": f"{b.run_id}/{tid}",
        "gen_ai.conversation.id": b.run_id, "session.id": b.run_id,
        "input.value": start_rec.text if start_rec else None,
        "output.value": final.text if final else None, "peerstep.trajectory_id": tid,
        "peerstep.reward": final.reward if final else None, "peerstep.forced": fd.get("forced"),
        "peerstep.answer_source": fd.get("source"), "peerstep.gold": fd.get("gold"),
        "peerstep.tools": start_rec.data.get("tools") if start_rec else None},
        events=events, error=error)


def _flush_assistant(messages: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Attach the tool calls logged after a model call to that call's assistant message."""
    if calls and messages and messages[-1]["role"] == "assistant":
        messages[-1]["tool_calls"] = list(calls)
    calls.clear()


def _llm(b: _Builder, rec: StepRecord, parent: SpanContext, messages: list[dict[str, Any]], tid: int,
         calls: list[dict[str, Any]]) -> None:
    """One model call: a reason record (a step of the trajectory) or a summary (for the peers); ``calls`` are the
    tool calls it made."""
    model = rec.model or ""
    is_summary = rec.kind == StepKind.SUMMARY
    latency = rec.latency_s or 0.0
    attrs = {
        "openinference.span.kind": "LLM", "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": rec.model, "gen_ai.response.model": rec.model, "llm.model_name": rec.model,
        "llm.provider": "openai", "llm.system": "openai",
        "gen_ai.response.finish_reasons": [rec.finish_reason] if rec.finish_reason else None,
        **_usage(rec), **_sampling(rec),
        "output.value": rec.text, "peerstep.kind": rec.kind.value, "peerstep.step_id": rec.step_id,
        "peerstep.trajectory_id": tid, "peerstep.mean_logprob": rec.mean_logprob,
        **_messages("llm.output_messages", [{"role": "assistant", "content": rec.text or "", "tool_calls": calls}]),
    }
    if not is_summary:  # a summary's own prompt is not logged; a step's is the conversation so far
        attrs.update(_messages("llm.input_messages", messages))
        attrs["input.value"] = messages[-1]["content"] if messages else None
        attrs["peerstep.input_reconstructed"] = True
    else:
        attrs["peerstep.data"] = rec.data or None
    b.span(rec.step_id, f"{'summarize' if is_summary else 'chat'} {model}".strip(), parent,
           rec.created_at - latency, rec.created_at, attrs, kind=SpanKind.CLIENT,
           error=rec.data.get("error") if isinstance(rec.data.get("error"), str) else None)


def _tool(b: _Builder, call: StepRecord, obs: StepRecord | None, parent: SpanContext) -> None:
    """One tool call: its request (tool_call record) and, when there is one, its result (observation record)."""
    assert call.tool is not None
    done = obs.tool if obs is not None and obs.tool is not None else call.tool
    end = obs.created_at if obs is not None else call.created_at
    start = end - (done.latency_s or 0.0) if obs is not None else call.created_at
    args = call.tool.arguments
    output = done.output if done.output is not None else (obs.text if obs else None)
    b.span(call.step_id, f"execute_tool {call.tool.name}", parent, start, end, {
        "openinference.span.kind": "TOOL", "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.tool.name, "gen_ai.tool.call.id": call.tool.call_id, "gen_ai.tool.type": "function",
        "gen_ai.tool.call.arguments": _text(args), "gen_ai.tool.call.result": output,
        "tool.name": call.tool.name, "tool.parameters": _text(args), "tool_call.id": call.tool.call_id,
        "tool_call.function.name": call.tool.name, "tool_call.function.arguments": _text(args),
        "input.value": _text(args), "input.mime_type": "application/json" if isinstance(args, dict) else None,
        "output.value": output, "peerstep.tool.ok": done.ok, "peerstep.tool.timed_out": done.timed_out or None,
        "peerstep.tool.source": call.tool.source, "peerstep.step_id": call.step_id},
        error=None if done.ok is not False else (output or "tool call failed"))


def _injections(b: _Builder, tid: int, recs: list[StepRecord],
                summary_ctx: dict[int, list[tuple[float, SpanContext]]]) -> None:
    """A peer injection: a span in the receiving trajectory, linked to each quoted peer's latest summary span."""
    for rec in recs:
        if rec.kind != StepKind.PEER_INJECT:
            continue
        sources = [s for s in rec.data.get("sources", []) if isinstance(s, int)]
        sims = rec.data.get("similarities") or []
        links: list[Link] = []
        for i, src in enumerate(sources):
            earlier = [c for t, c in summary_ctx.get(src, []) if t <= rec.created_at] or \
                      [c for _, c in summary_ctx.get(src, [])[:1]]
            if earlier:
                links.append(Link(earlier[-1], attributes=_clean({
                    "peerstep.link": "peer_summary", "peerstep.source_trajectory": src,
                    "peerstep.similarity": sims[i] if i < len(sims) and isinstance(sims[i], int | float) else None})))
        b.span(rec.step_id, f"peer_inject from {', '.join(map(str, sources)) or 'peers'}",
               b.context(f"trajectory:{tid}"), rec.created_at, rec.created_at, {
                   "openinference.span.kind": "CHAIN", "peerstep.kind": "peer_inject", "input.value": rec.text,
                   "peerstep.router": rec.data.get("router"), "peerstep.round": rec.data.get("round"),
                   "peerstep.sources": sources, "peerstep.similarities": json.dumps(sims),
                   # the links again as attributes: not every backend keeps span links (Phoenix does not)
                   "peerstep.source_span_ids": [format(link.context.span_id, "016x") for link in links] or None,
                   "peerstep.step_id": rec.step_id}, links=links)
