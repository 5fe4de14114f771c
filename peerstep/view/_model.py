"""A run's rows turned into a plain view model: columns of steps, round bands, peer links, badges and the vote.

The page script only draws; every decision about what a record means is made here, in Python, where it is tested
without a browser. The model is JSON-ready (plain dicts, lists, strings, numbers) because it is embedded in the
page as JSON and, when serving, sent again as the run grows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from peerstep.steplog import StepKind, StepRecord, StepRow
from peerstep.steplog._steps import PEER_EFFECT_THRESHOLD

# data keys of step labels (Math-Shepherd / PRM800K style), on ``label`` records that judge another step
LABEL_KEYS = ("mc_n", "mc_k", "value", "hard", "first_error")
_ONE_LINE = 160


def _short(text: str | None, limit: int = _ONE_LINE) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _args_line(arguments: dict[str, Any] | str) -> str:
    if isinstance(arguments, str):
        return _short(arguments, 120)
    return _short(", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items()), 120)


def _label_badges(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Badges for a step label: Monte Carlo k/n, value, hard label, first error."""
    out: list[dict[str, Any]] = []
    n, k = data.get("mc_n"), data.get("mc_k")
    if isinstance(n, int) and isinstance(k, int):
        out.append({"text": f"MC {k}/{n}", "tone": "good" if n and k / n >= 0.5 else "bad",
                    "title": f"{k} of {n} rollouts from this step reached a correct answer"})
    value = data.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        out.append({"text": f"value {value:.2f}", "tone": "good" if value >= 0.5 else "bad",
                    "title": "estimated value of this step"})
    hard = data.get("hard")
    if hard is not None:
        good = bool(hard)
        out.append({"text": "hard ✓" if good else "hard ✗", "tone": "good" if good else "bad",
                    "title": f"hard label: {hard}"})
    if data.get("first_error"):
        out.append({"text": "first error", "tone": "bad", "title": "the first wrong step of this trajectory"})
    return out


def _peer_badges(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The badge of a peer label (``peerstep label --peers``) on its injection: the comment's measured effect."""
    effect = data.get("effect")
    if not isinstance(effect, int | float) or isinstance(effect, bool):
        return []
    with_, without = data.get("with") or {}, data.get("without") or {}
    tone = "good" if effect > PEER_EFFECT_THRESHOLD else "bad" if effect < -PEER_EFFECT_THRESHOLD else ""
    return [{"text": f"effect {effect:+.2f}", "tone": tone,
             "title": f"continuations with this peer comment: {with_.get('k')}/{with_.get('n')} correct; from the "
                      f"same state without it: {without.get('k')}/{without.get('n')} (effect = value with - value "
                      f"without; |effect| <= {PEER_EFFECT_THRESHOLD} is no effect)"}]


def _badges_of_label(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Badges of a ``label`` record: a step label's or a peer label's; None when it is neither."""
    if data.get("peer"):
        return _peer_badges(data)
    if any(k in data for k in LABEL_KEYS):
        return _label_badges(data)
    return None


def _verify_badge(rec: StepRecord) -> dict[str, Any]:
    score = rec.data.get("score")
    name = str(rec.data.get("verifier") or "verifier")
    partial = " (partial, at a barrier)" if rec.data.get("partial") else ""
    text = f"{name} {score:.2f}" if isinstance(score, int | float) else f"{name} ?"
    tone = "good" if isinstance(score, int | float) and score >= 0.5 else "bad"
    return {"text": text, "tone": tone, "title": f"verifier {name}{partial}: {rec.text or ''}".strip()}


def _unknown_kind(row: StepRow) -> dict[str, Any] | None:
    """The row as a dict when it is a valid record of a kind this version does not know (a newer peerstep's
    ``label``, say); None when it is corrupt. Such rows are shown, not reported as corrupt."""
    try:
        obj = json.loads(row.raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("kind") in {k.value for k in StepKind}:
        return None
    try:
        StepRecord.model_validate({**obj, "kind": StepKind.OBSERVATION.value})
    except ValidationError:
        return None
    return obj


class _Builder:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.steps: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.calls: dict[tuple[int, str], dict[str, Any]] = {}
        self.columns: dict[int, dict[str, Any]] = {}
        self.bands: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []
        self.summaries: dict[int, list[tuple[int, str]]] = {}
        self.pending_badges: dict[str, list[dict[str, Any]]] = {}
        self.vote: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.corrupt = 0
        self.last_seq = 0
        self.segment = 0

    def column(self, tid: int) -> dict[str, Any]:
        if tid not in self.columns:
            self.columns[tid] = {"tid": tid, "state": "unfinished", "reason": None, "answer": None, "correct": None,
                                 "steps": 0, "tokens": 0, "errors": 0, "tools": []}
        return self.columns[tid]

    def add_step(self, seq: int, tid: int, kind: str, step_id: str, **fields: Any) -> dict[str, Any]:
        step = {"id": step_id, "seq": seq, "tid": tid, "seg": self.segment, "kind": kind, "badges": [],
                **fields}
        step["badges"].extend(self.pending_badges.pop(step_id, []))
        self.steps.append(step)
        self.by_id[step_id] = step
        col = self.column(tid)
        col["steps"] += 1
        if step.get("err"):
            col["errors"] += 1
        return step

    def badge(self, target: str | None, badges: list[dict[str, Any]]) -> bool:
        """Put badges on the step they judge; a judged step not read yet (a live log) gets them when it comes."""
        if not target:
            return False
        if target in self.by_id:
            self.by_id[target]["badges"].extend(badges)
        else:
            self.pending_badges.setdefault(target, []).extend(badges)
        return True

    def row(self, row: StepRow) -> None:
        self.last_seq = max(self.last_seq, row.seq)
        rec = row.record
        if rec is None:
            self.invalid(row)
        elif rec.trajectory_id < 0:
            self.run_level(row.seq, rec)
        else:
            self.trajectory_step(row.seq, rec)

    def invalid(self, row: StepRow) -> None:
        obj = _unknown_kind(row)
        if obj is None:
            self.corrupt += 1
            tid = row.trajectory_id if row.trajectory_id >= 0 else -1
            step = {"text": row.raw[:4000], "line": f"corrupt row {row.seq} ({row.kind}): {row.error}", "err": True}
            if tid < 0:
                self.events.append({"seq": row.seq, "kind": "corrupt", "id": f"row-{row.seq}", "seg": self.segment,
                                    **step})
            else:
                self.add_step(row.seq, tid, "corrupt", f"row-{row.seq}", **step)
            return
        data: dict[str, Any] = obj["data"] if isinstance(obj.get("data"), dict) else {}
        kind = str(obj.get("kind"))
        target = data.get("step_id") or obj.get("parent_id")
        if kind == "label" and (badges := _badges_of_label(data)) is not None and self.badge(target, badges):
            return
        tid = int(obj.get("trajectory_id") or 0)
        step_id = str(obj.get("step_id") or f"row-{row.seq}")
        shown: dict[str, Any] = {"text": obj.get("text"), "data": data,
                                 "line": f"{kind} (a kind this version does not know): {_short(obj.get('text'))}"}
        if tid < 0:
            self.events.append({"seq": row.seq, "id": step_id, "kind": kind, "seg": self.segment, **shown})
        else:
            self.add_step(row.seq, tid, kind, step_id, **shown)

    def run_level(self, seq: int, rec: StepRecord) -> None:
        kind = rec.kind
        if kind == StepKind.BARRIER:
            self.bands.append({"seg": self.segment, "seq": seq, "round": rec.data.get("round"), "text": rec.text,
                               "active": rec.data.get("active", []), "finished": rec.data.get("finished", [])})
            self.segment += 1
        elif kind == StepKind.AGGREGATE:
            self.vote = self.vote_of(rec)
        elif kind == StepKind.RUN_END:
            self.end = {"text": rec.text, **{k: v for k, v in rec.data.items() if not isinstance(v, dict | list)}}
        else:
            err = kind == StepKind.ERROR
            self.events.append({"seq": seq, "id": rec.step_id, "kind": kind.value, "seg": self.segment, "err": err,
                                "line": f"{kind.value}: {_short(rec.text)}", "text": rec.text, "data": rec.data})

    def vote_of(self, rec: StepRecord) -> dict[str, Any]:
        decision = rec.data.get("decision") or {}
        groups = []
        for group in decision.get("groups") or []:
            answer, members, weight = [*list(group), None, [], None][:3]
            groups.append({"answer": answer, "trajectories": members, "weight": weight,
                           "won": answer == decision.get("answer")})
        return {"answer": decision.get("answer", rec.text), "method": decision.get("method"),
                "support": decision.get("support"), "total": decision.get("total"), "groups": groups,
                "gold": rec.data.get("gold"), "correct": rec.data.get("correct"),
                "stop_reason": rec.data.get("stop_reason")}

    def trajectory_step(self, seq: int, rec: StepRecord) -> None:
        kind, tid = rec.kind, rec.trajectory_id
        col = self.column(tid)
        if rec.usage is not None:
            col["tokens"] += rec.usage.completion_tokens
        if kind == StepKind.RUN_START:
            col["tools"] = rec.data.get("tools", [])
            return
        if kind == StepKind.VERIFY and self.badge(rec.parent_id, [_verify_badge(rec)]):
            return
        if kind.value == "label" and (badges := _badges_of_label(rec.data)) is not None and self.badge(
                rec.data.get("step_id") or rec.parent_id, badges):
            return
        tool = rec.tool
        if kind == StepKind.OBSERVATION and tool is not None and tool.call_id \
                and (call := self.calls.get((tid, tool.call_id))) is not None:
            call["result"] = {"output": tool.output if tool.output is not None else rec.text, "ok": tool.ok,
                              "latency": tool.latency_s, "timed_out": tool.timed_out}
            if tool.ok is False or tool.timed_out:
                call["err"] = True
                col["errors"] += 1
            self.by_id[rec.step_id] = call  # what judges the observation (a verifier) lands on its call
            call["badges"].extend(self.pending_badges.pop(rec.step_id, []))
            return
        fields: dict[str, Any] = {"text": rec.text}
        if kind == StepKind.REASON:
            fields["line"] = _short(rec.text) or "(empty reply)"
            fields["meta"] = {"model": rec.model, "latency": rec.latency_s, "finish": rec.finish_reason,
                              "tokens": rec.usage.completion_tokens if rec.usage else None}
        elif kind == StepKind.TOOL_CALL and tool is not None:
            fields["line"] = f"{tool.name}({_args_line(tool.arguments)})"
            fields["tool"] = {"name": tool.name, "arguments": tool.arguments, "source": tool.source}
        elif kind == StepKind.PEER_INJECT:
            fields.update(self.injection(seq, rec))
        elif kind == StepKind.FINAL:
            col.update(answer=rec.text, correct=None if rec.reward is None or "gold" not in rec.data
                       else rec.reward >= 1.0)
            if col["state"] == "unfinished":
                col["state"] = "done"
            fields["line"] = f"answer: {_short(rec.text)}"
        elif kind == StepKind.PRUNE:
            col.update(state="pruned", reason=rec.text or "pruned")
            score = rec.data.get("score")
            fields["line"] = rec.text or "pruned"
            if isinstance(score, int | float):
                fields["line"] += f" (score {score:.2f})"
                col["reason"] = fields["line"]
        elif kind == StepKind.ERROR:
            fields.update(err=True, line=f"error: {_short(rec.text)}")
            col["last_error"] = rec.text
        elif kind == StepKind.BUDGET:
            fields.update(budget=True, line=f"budget: {_short(rec.text)}")
        else:
            fields["line"] = _short(rec.text) or kind.value
        if rec.data:
            fields["data"] = rec.data
        step = self.add_step(seq, tid, kind.value, rec.step_id, **fields)
        if kind == StepKind.TOOL_CALL and tool is not None and tool.call_id:
            self.calls[(tid, tool.call_id)] = step
        if kind == StepKind.SUMMARY:
            self.summaries.setdefault(tid, []).append((seq, rec.step_id))

    def injection(self, seq: int, rec: StepRecord) -> dict[str, Any]:
        """Links from each source's latest summary to this injection (a finished peer's summary is reused)."""
        sources = list(rec.data.get("sources") or [])
        sims = list(rec.data.get("similarities") or [])
        router = rec.data.get("router")
        parts = []
        for i, src in enumerate(sources):
            sim = sims[i] if i < len(sims) else None
            earlier = [sid for s, sid in self.summaries.get(int(src), []) if s < seq]
            self.links.append({"from": earlier[-1] if earlier else None, "to": rec.step_id, "src": src,
                               "dst": rec.trajectory_id, "sim": sim, "router": router,
                               "round": rec.data.get("round")})
            parts.append(f"T{src}" + (f" (sim {sim:.2f})" if isinstance(sim, int | float) else ""))
        line = f"peers via {router}: {', '.join(parts)}" if parts else "no peers to hear"
        return {"line": line, "sources": sources}

    def finish(self) -> dict[str, Any]:
        status = self.meta.get("status")
        for col in self.columns.values():
            if col["state"] == "unfinished":
                if col.get("last_error"):
                    col.update(state="failed", reason=col["last_error"])
                elif status == "running":
                    col["state"] = "running"
        if self.vote is not None:  # a group is correct or not as its members' own finals were graded
            for group in self.vote["groups"]:
                verdicts = [self.columns[t]["correct"] for t in group["trajectories"]
                            if t in self.columns and self.columns[t]["correct"] is not None]
                group["correct"] = self.vote["correct"] if group["won"] and self.vote["correct"] is not None \
                    else (verdicts[0] if verdicts else None)
        meta = self.meta
        run = {k: meta.get(k) for k in ("run_id", "status", "status_reason", "strategy", "n", "model", "question",
                                        "gold", "answer", "correct", "created_at", "dataset", "task_id")}
        # steps whose judged step never came: shown as their own lines, not lost
        for target, badges in self.pending_badges.items():
            self.events.append({"seq": self.last_seq, "id": f"badge-{target}", "kind": "badge", "seg": self.segment,
                                "line": f"scores for step {target}, which is not in the log: "
                                        + ", ".join(b["text"] for b in badges)})
        return {"run": run, "end": self.end, "columns": [self.columns[t] for t in sorted(self.columns)],
                "steps": self.steps, "bands": self.bands, "events": self.events, "links": self.links,
                "vote": self.vote, "corrupt": self.corrupt, "segments": self.segment + 1, "last_seq": self.last_seq}


def build_model(meta: dict[str, Any], rows: Iterable[StepRow]) -> dict[str, Any]:
    """The view model of one run from its meta and its rows (as :meth:`StepLog.rows` reads them)."""
    builder = _Builder(meta)
    for row in rows:
        builder.row(row)
    return builder.finish()
