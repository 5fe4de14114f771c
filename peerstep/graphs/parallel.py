"""N trajectories of one problem, advanced in rounds, with peer sharing and verifiers at barriers.

    START → start ─→ [Send advance × active] ─→ barrier ─┬─ [Send advance × active]  (next round)
                                                        └─ finalize → END

``advance`` runs one trajectory's reason/act loop (``peerstep.graphs.react``, the only loop) for one
round: up to ``round_steps`` model calls or ``round_tokens`` tokens, or until it finishes. All active
trajectories advance concurrently, so the model server sees their requests together and can batch them
(vLLM does; llama.cpp serves them one at a time). The edge into ``barrier`` is the synchronisation point: there the
trajectories share summaries (LeaP), verifiers may score and prune them, and the run stops
early when enough finished trajectories agree. ``finalize`` forces an answer from every
unfinished trajectory, scores the answers and aggregates them into one decision.

A trajectory that fails is logged and retired inside its own ``advance``; it never fails the
superstep, so its siblings go on.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send
from pydantic import BaseModel, Field, field_validator

from peerstep.agent import Trajectory, TrajectoryState
from peerstep.grading import Checker
from peerstep.graphs.react import Loop, thin
from peerstep.peers._share import SharingConfig, share
from peerstep.peers._switch import outputs_around_comments, voting_answer
from peerstep.registry import AGGREGATORS
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.steplog._steps import process_step_texts
from peerstep.verify import (
    Candidate,
    Choice,
    Decision,
    ListwiseJudge,
    TrajectoryView,
    Verifier,
    VerifierError,
    agreement_reached,
    backed_by,
    listwise_options,
)


class ParallelConfig(BaseModel):
    n: int = Field(default=4, ge=1)
    max_rounds: int = Field(default=4, ge=1, description="rounds before unfinished trajectories are forced")
    round_steps: int = Field(default=2, ge=1, description="model calls per trajectory per round")
    round_tokens: int = Field(default=1024, ge=1, description="generated tokens per trajectory per round")
    sharing: SharingConfig | None = Field(default=None, description="LeaP peer sharing at barriers; None is off")
    barrier_verify: bool = Field(default=False, description="score active trajectories at barriers")
    prune_keep: int | None = Field(default=None, ge=1, description="keep only the best m active at barriers")
    aggregate: str = Field(
        default="majority", description="an aggregator's name in peerstep.registry.AGGREGATORS (majority, weighted, "
        "best-of-n, listwise, tool-backed, or one registered there). listwise: when the answers disagree, a "
        "list-wise judge (the run's own model unless given) picks one of them from their solutions side by side; "
        "majority vote when it cannot. tool-backed: majority vote in which an answer none of its trajectory's tool "
        "results states counts half")
    greedy_first: bool = Field(default=False, description="trajectory 0 samples at the run's own temperature "
                               "(greedy at 0) and the others at the sampling temperature of several trajectories; "
                               "ties of the vote go to trajectory 0's answer")
    early_stop: int | None = Field(default=None, ge=1, description="stop when this many finished answers agree")
    early_stop_lead: int = Field(default=0, ge=0, description="and the agreed answer has at least this many votes "
                                 "more than any other (1: a tie does not stop)")
    wave: int | None = Field(default=None, ge=1, description="start this many trajectories at first and as many "
                             "more at each barrier where all have finished and the run has not stopped early "
                             "(adaptive sampling); None starts all n at once")

    @field_validator("aggregate")
    @classmethod
    def _known_aggregator(cls, value: str) -> str:
        if value not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {value!r}; known: {', '.join(AGGREGATORS)}")
        return value


def _merge(left: dict[int, Any], right: dict[int, Any]) -> dict[int, Any]:
    return {**left, **right}


class ParallelState(TypedDict, total=False):
    trajectories: Annotated[dict[int, TrajectoryState], _merge]
    round: int
    stop_reason: str | None
    pruned: Annotated[list[int], operator.add]
    scores: dict[int, dict[str, float]]
    decision: dict[str, Any] | None
    correct: bool | None


class PendingDecision(BaseModel):
    """A decision a paused run waits for: answer it by ``id``."""

    id: str
    value: Any = Field(description="what the pausing node asked (JSON data, e.g. the tool call to approve)")


class Paused(BaseModel):
    run_id: str
    pending: list[PendingDecision]


class ParallelResult(BaseModel):
    run_id: str
    answer: str | None
    decision: Decision
    answers: dict[int, str | None]
    scores: dict[int, dict[str, float]]
    rounds: int
    stop_reason: str
    tokens: int
    steps: int = Field(description="model calls over all trajectories")
    errors: dict[int, str]
    correct: bool | None = Field(default=None, description="the decision graded by the task's checker (with gold)")
    reward: float | None = Field(default=None, description="a single trajectory's reward; None for several")
    transcripts: dict[int, list[dict[str, Any]]] = Field(
        default_factory=dict, description="each trajectory's conversation at the end (what a chat's next turn "
        "continues from)")


def view_of(state: TrajectoryState, question: str, gold: str | None = None,
            peers: list[str | None] | None = None) -> TrajectoryView:
    """A verifier's view of a trajectory, built from the conversation (its opening left out: the system prompt,
    earlier turns of a chat, the question)."""
    steps = []
    for msg in state["messages"][state.get("opening", 2):]:
        content = msg.get("content") or ""
        if msg.get("role") == "assistant":
            steps.append(content)
        elif content and not content.startswith("<comment>"):
            steps.append(f"[result] {content}")
    return TrajectoryView(trajectory_id=state["trajectory_id"], question=question, answer=state.get("answer"),
                          steps=steps, gold=gold, peer_answers=peers or [], finished=bool(state.get("done")))


class ParallelRun:
    """Runtime of a parallel run: the trajectories, verifiers and the run-level log."""

    def __init__(self, trajectories: list[Trajectory], config: ParallelConfig, log: StepLog,
                 verifiers: list[Verifier] | None = None,
                 listeners: list[Callable[[StepRecord], None]] | None = None,
                 initial: TrajectoryState | None = None, origin: dict[str, Any] | None = None,
                 judge: ListwiseJudge | None = None) -> None:
        """``initial`` makes this run a fork: every trajectory starts from that state (a step of another run,
        named by ``origin``) instead of from its environment's opening. ``judge`` picks among disagreeing answers
        when the config's ``aggregate`` is ``listwise``."""
        self.initial = initial
        self.origin = origin
        self.trajectories = {t.trajectory_id: t for t in trajectories}
        self.loops = {t.trajectory_id: Loop(t) for t in trajectories}
        self.envs = [t.env for t in trajectories]
        # the task's own checker decides reward, vote grouping and the verdict alike
        self.checker: Checker = self.envs[0].checker
        self.config = config
        self.log = log
        self.verifiers = list(verifiers or [])
        self.listeners = list(listeners or [])
        self.gold: str | None = self.envs[0].gold
        self.judge = judge

    def run_record(self, kind: StepKind, **fields: Any) -> StepRecord:
        """A run-level record (trajectory -1): barriers, decisions."""
        rec = self.log.append(StepRecord(run_id=self.log.run_id, trajectory_id=-1, kind=kind, **fields))
        for listener in self.listeners:
            listener(rec)
        return rec

    # --- nodes ---------------------------------------------------------------------------------
    async def start(self, _: ParallelState) -> ParallelState:
        states = await self._start(sorted(self.trajectories)[:self.config.wave or len(self.trajectories)])
        return {"trajectories": {s["trajectory_id"]: s for s in states}, "round": 0, "stop_reason": None,
                "pruned": [], "scores": {}, "decision": None}

    async def _start(self, tids: list[int]) -> list[TrajectoryState]:
        """Start trajectories ``tids``: from their environment's opening, or from the forked state."""
        if self.initial is not None:
            initial = self.initial
            return [self._forked(self.trajectories[tid], initial) for tid in tids]
        return list(await asyncio.gather(*(self.trajectories[tid].start() for tid in tids)))

    def _forked(self, traj: Trajectory, base: TrajectoryState) -> TrajectoryState:
        """A fork's trajectory: the conversation up to the forked step, a fresh budget, its own first record."""
        rec = traj.record(StepKind.RUN_START, None, text=_question(base), data={
            "forked_from": self.origin, "tools": [t.name for t in traj.tools]})
        return {**base, "trajectory_id": traj.trajectory_id, "last_step_id": rec.step_id, "steps": 0, "tokens": 0,
                "started_at": time.time(), "forced_calls": 0}

    def fan_out(self, state: ParallelState) -> list[Send] | str:
        states = state["trajectories"]
        if stop := state.get("stop_reason"):
            if stop.startswith("early stop"):
                return "finalize"
            # every unfinished trajectory is forced to answer, each in its own task (its own checkpoints)
            return [Send("force", {"tid": tid, "state": {**st, "force_reason": "the run's last round ended"}})
                    for tid, st in sorted(states.items()) if not st.get("done")] or "finalize"
        return [Send("advance", {"tid": tid, "state": st}) for tid, st in sorted(states.items())
                if not st.get("done")]

    async def advance(self, payload: dict[str, Any]) -> ParallelState:
        tid = payload["tid"]
        new = await self.loops[tid].run_round(payload["state"], self.config.round_steps, self.config.round_tokens)
        return {"trajectories": {tid: new}}

    async def force(self, payload: dict[str, Any]) -> ParallelState:
        tid = payload["tid"]
        return {"trajectories": {tid: await self.loops[tid].run_round(payload["state"], max_steps=1,
                                                                      max_tokens=10**9)}}

    async def barrier(self, state: ParallelState) -> ParallelState:
        rnd = state["round"] + 1
        states = dict(state["trajectories"])
        active = [tid for tid, st in states.items() if not st.get("done")]
        votes_with = self._voting_answers({tid: st for tid, st in states.items() if st.get("done") and not
                                           st.get("error")})
        finished = [Candidate(trajectory_id=tid, answer=answer) for tid, answer in votes_with.items()]
        waiting = [tid for tid in sorted(self.trajectories) if tid not in states]  # a later wave's
        stop: str | None = None
        if self.config.early_stop and (agreed := agreement_reached(finished, self.config.early_stop,
                                                                   equivalent=self.checker,
                                                                   lead=self.config.early_stop_lead)):
            stop = f"early stop: {self.config.early_stop} trajectories agree on {agreed!r}"
        elif not active and not waiting:
            stop = "all trajectories finished"
        elif rnd >= self.config.max_rounds:
            stop = f"max_rounds ({self.config.max_rounds}) reached"
        started: list[int] = []
        if not stop and not active and waiting:  # the vote is not settled: sample the next wave
            started = waiting[:self.config.wave or len(waiting)]
        self.run_record(StepKind.BARRIER, text=stop, data={
            "round": rnd, "active": sorted(active), "finished": sorted(c.trajectory_id for c in finished),
            **({"started": started} if started else {})})
        update: ParallelState = {"round": rnd, "stop_reason": stop}
        if stop:
            return update
        if started:
            states.update({st["trajectory_id"]: st for st in await self._start(started)})
            return {**update, "trajectories": states}
        pruned: list[int] = []
        scores = dict(state.get("scores") or {})
        if self.config.barrier_verify or self.config.prune_keep:
            scores.update(await self._score({tid: states[tid] for tid in active}, partial=True))
            if self.config.prune_keep and len(active) > self.config.prune_keep:
                ranked = sorted(active, key=lambda t: (_mean(scores.get(t)), -t), reverse=True)
                pruned = ranked[self.config.prune_keep:]
                for tid in pruned:
                    st = states[tid]
                    rec = self.trajectories[tid].record(StepKind.PRUNE, st["last_step_id"],
                                                        text=f"pruned at round {rnd}",
                                                        data={"score": _mean(scores.get(tid)), "round": rnd})
                    states[tid] = {**st, "done": True, "error": "pruned", "last_step_id": rec.step_id}
        if self.config.sharing is not None:
            states.update(await share(self.trajectories, states, self.config.sharing, rnd))
        return {**update, "trajectories": states, "pruned": pruned, "scores": scores}

    async def finalize(self, state: ParallelState) -> ParallelState:
        states = dict(state["trajectories"])
        answered = {tid: st for tid, st in states.items() if st.get("done") and not st.get("error")}
        scores = dict(state.get("scores") or {})
        if self.verifiers:
            scores.update(await self._score(answered, partial=False))
        backed = self.config.aggregate == "tool-backed"
        votes_with = self._voting_answers(answered)
        candidates = [Candidate(trajectory_id=tid, answer=votes_with[tid], score=_mean(scores.get(tid), None),
                                backed=backed_by(votes_with[tid], self._tool_outputs(tid)) if backed else None)
                      for tid in sorted(answered)]
        # "listwise" is registered as the majority vote; its judge (below) may then pick another answer
        decide = AGGREGATORS.get(self.config.aggregate)
        decision: Decision = decide(candidates, equivalent=self.checker)
        extra: dict[str, Any] = {}
        if self.config.aggregate == "listwise":
            decision, extra = await self._listwise(decision, answered)
        if backed:
            extra["backed"] = {c.trajectory_id: c.backed for c in candidates}
        if self.config.sharing is not None and self.config.sharing.switch_needs_rerun:
            # trajectory -> [what it submitted, what it votes with], for those the rule moved
            extra["switch_needs_rerun"] = {tid: [st.get("answer"), votes_with[tid]] for tid, st in answered.items()
                                           if votes_with[tid] != st.get("answer")}
        correct = self.envs[0].grade(decision.answer)  # the task's own verdict, as for the reward
        self.run_record(StepKind.AGGREGATE, text=decision.answer, data={
            "decision": decision.model_dump(), "stop_reason": state.get("stop_reason"), "gold": self.gold,
            "correct": correct, **extra})
        return {"trajectories": states, "scores": scores, "decision": decision.model_dump(), "correct": correct}

    def _voting_answers(self, answered: dict[int, TrajectoryState]) -> dict[int, str | None]:
        """What each answered trajectory votes with: its answer, or under ``SharingConfig.switch_needs_rerun`` the
        number it printed before reading peers when it switched without re-computing (``voting_answer``)."""
        rule = self.config.sharing is not None and self.config.sharing.switch_needs_rerun
        if not rule:
            return {tid: st.get("answer") for tid, st in answered.items()}
        out: dict[int, str | None] = {}
        for tid, st in answered.items():
            traj = self.trajectories[tid]
            outputs = outputs_around_comments(traj.log.records(tid), traj.finish_tool)
            out[tid] = voting_answer(st.get("answer"), outputs)
        return out

    def _tool_outputs(self, tid: int) -> list[str]:
        """What trajectory ``tid``'s own tools returned; a fork's log lacks its parent's steps, so its last result
        before the fork is added."""
        outputs = [result.text or "" for _, result in self.trajectories[tid].tool_results()]
        if self.initial is not None and (last := self.initial.get("last_result")):
            outputs.append(last)
        return outputs

    async def _listwise(self, votes: Decision, answered: dict[int, TrajectoryState]
                        ) -> tuple[Decision, dict[str, Any]]:
        """The list-wise judge's pick among the distinct answers of ``votes`` (its groups, most votes first), with
        what the aggregate record keeps of it: the options, the pick and the majority's answer, so a report can
        compare the two on the same trajectories. One answer needs no judge; a judge that fails leaves the vote."""
        if len(votes.groups) < 2:
            return votes.model_copy(update={"method": "listwise"}), {"listwise": None}
        question = _question(answered[votes.groups[0][1][0]])
        # each option's work as the step log has it (code, results, the submission: what a PRM export writes); a
        # fork's log lacks its parent's steps, so there the conversation is read instead
        groups, options = listwise_options(votes.groups, question, lambda tid: process_step_texts(
            list(self.log.records(tid))) or view_of(answered[tid], question).steps)
        kept = {"options": [rep for rep, _, _ in groups], "majority": votes.answer}
        try:
            if self.judge is None:
                raise VerifierError("aggregate 'listwise' was asked for, but the run has no list-wise judge")
            choice: Choice = await self.judge.choose(question, options)
        except VerifierError as exc:
            self.run_record(StepKind.ERROR, text=f"list-wise judge failed, the majority vote decides: {exc}",
                            data={"error": "VerifierError", "stage": "listwise"})
            return votes.model_copy(update={"method": "majority (list-wise judge failed)"}), {
                "listwise": {**kept, "error": str(exc)}}
        rep, _, weight = groups[choice.index]
        return (Decision(answer=rep, method="listwise", support=weight, total=votes.total, groups=votes.groups),
                {"listwise": {**kept, "choice": choice.index, "probabilities": choice.probabilities,
                              "rationale": choice.rationale}})

    async def _score(self, states: dict[int, TrajectoryState], partial: bool) -> dict[int, dict[str, float]]:
        verifiers = [v for v in self.verifiers if v.partial_ok or not partial]
        answers = {tid: st.get("answer") for tid, st in states.items()}
        # the steps as the PRM exports write them, from the log (a fork's log lacks its parent's steps: none then)
        process = {tid: [] if self.initial is not None else process_step_texts(list(self.log.records(tid)))
                   for tid in states} if verifiers else {}

        async def one(tid: int, verifier: Verifier) -> tuple[int, str, float | None]:
            st = states[tid]
            peers = [a for t, a in answers.items() if t != tid]
            view = view_of(st, _question(st), self.gold, peers).model_copy(update={"process_steps": process[tid]})
            traj = self.trajectories[tid]
            try:
                result = await verifier.score(view)
            except VerifierError as exc:
                traj.record(StepKind.ERROR, st["last_step_id"], text=f"verifier {verifier.name} failed: {exc}",
                            data={"error": "VerifierError", "stage": "verify"})
                return tid, verifier.name, None
            traj.record(StepKind.VERIFY, st["last_step_id"], text=result.rationale, data={
                "verifier": result.verifier, "score": result.score, "step_scores": result.step_scores,
                "partial": partial})
            return tid, verifier.name, result.score

        results = await asyncio.gather(*(one(tid, v) for tid in states for v in verifiers))
        out: dict[int, dict[str, float]] = {}
        for tid, name, score in results:
            if score is not None:
                out.setdefault(tid, {})[name] = score
        return out

    # --- wiring --------------------------------------------------------------------------------
    def build(self, checkpointer: BaseCheckpointSaver[Any] | None = None) -> Any:
        graph: Any = StateGraph(ParallelState)  # langgraph's node typing cannot express Send payload nodes
        graph.add_node("start", thin(self.start))
        graph.add_node("advance", thin(self.advance))
        graph.add_node("barrier", thin(self.barrier))
        graph.add_node("force", thin(self.force))
        graph.add_node("finalize", thin(self.finalize))
        graph.add_edge(START, "start")
        graph.add_conditional_edges("start", self.fan_out, ["advance", "force", "finalize"])
        graph.add_edge("advance", "barrier")
        graph.add_conditional_edges("barrier", self.fan_out, ["advance", "force", "finalize"])
        graph.add_edge("force", "finalize")
        graph.add_edge("finalize", END)
        return graph.compile(checkpointer=checkpointer)

    def graph_config(self) -> dict[str, Any]:
        """The config a checkpointed run is invoked with: its thread is its run id."""
        return {"recursion_limit": 3 * (self.config.max_rounds + 2) + 10,
                "configurable": {"thread_id": self.log.run_id}}

    async def run(self, checkpointer: BaseCheckpointSaver[Any] | None = None, *, resume: bool = False,
                  decisions: dict[str, Any] | None = None) -> ParallelResult | Paused:
        """Run the graph to its end or to its first pause.

        With a ``checkpointer`` every superstep (and every reason/act step inside a trajectory's round) is saved
        before the next starts (durability "sync"), so a killed run resumes from its last step (``resume=True``).
        A node that asks for a decision (``interrupt``) pauses the run: ``Paused`` lists what is asked, and
        ``decisions`` (interrupt id → value) resume it.
        """
        graph = self.build(checkpointer)
        config = self.graph_config()
        payload: Any = {}
        if decisions is not None:
            payload = Command(resume=decisions)
        elif resume:
            payload = None
        durability = "sync" if checkpointer is not None else None
        final: dict[str, Any] = await graph.ainvoke(payload, config, durability=durability)
        if final.get("__interrupt__"):
            return Paused(run_id=self.log.run_id, pending=[
                PendingDecision(id=i.id, value=i.value) for i in final["__interrupt__"]])
        states = final["trajectories"]
        decision = Decision.model_validate(final["decision"])
        return ParallelResult(
            run_id=self.log.run_id, answer=decision.answer, decision=decision,
            answers={tid: st.get("answer") for tid, st in sorted(states.items())},
            scores=final.get("scores") or {}, rounds=final.get("round", 0),
            stop_reason=final.get("stop_reason") or "", tokens=sum(st.get("tokens", 0) for st in states.values()),
            steps=sum(st.get("steps", 0) for st in states.values()),
            errors={tid: str(st.get("error")) for tid, st in states.items() if st.get("error")},
            correct=final.get("correct"),
            reward=next(iter(states.values())).get("reward") if len(states) == 1 else None,
            transcripts={tid: list(st.get("messages") or []) for tid, st in sorted(states.items())})


def _question(state: TrajectoryState) -> str:
    """The task as the model was given it (the opening's last message; in a chat, earlier turns come before it):
    state, so resumable. Checkpoints older than the ``opening`` field held the question second."""
    messages = state["messages"]
    at = state.get("opening", 2) - 1
    return str(messages[at].get("content", "")) if len(messages) > at >= 0 else ""


def _mean(scores: dict[str, float] | None, default: float | None = 0.5) -> Any:
    if not scores:
        return default
    return sum(scores.values()) / len(scores)

