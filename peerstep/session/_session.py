"""A multi-turn conversation with a tool-using agent: ``peerstep chat`` and ``peerstep.Session`` are this.

Each turn is one run of the one runner (``arun``), under the strategy the session has at that moment, so a turn
is logged, checkpointed, graded and voted exactly as ``solve`` would; the session adds what lasts across turns:

- the conversation: the adopted trajectory's messages of every earlier turn open the next one (fitted to the
  model's window, ``_history``);
- the Python sandbox: trajectory 0 of every turn uses the session's own sandbox, so a variable defined in turn 1
  exists in turn 5; other trajectories get a sandbox rebuilt by replaying the session's cells, and when the vote
  adopts one of them the session's sandbox is rebuilt from its cells;
- the session file (``_store``), written before and after every turn, so a killed session resumes with its turns,
  strategy, approval policy and (replayed) sandbox, and a turn cut off by the kill is marked lost, never half-kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from peerstep._endpoint import Endpoint
from peerstep._errors import InputError, PeerstepError
from peerstep.agent import AgentConfig, ModelClient
from peerstep.agent._approval import ApprovalDecision, ApprovalPolicy, ApprovalRequest, Approver
from peerstep.agent._trajectory import wire_messages
from peerstep.environments.question import MAX_QUESTION_CHARS, QuestionEnvironment
from peerstep.registry import STRATEGIES
from peerstep.session import _store
from peerstep.session._events import AnswerEvent, ApprovalEvent, Event, NoticeEvent, StepEvent, TokenEvent
from peerstep.session._history import fit
from peerstep.session._store import Cell, SessionRecord, Turn
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.strategies import strategy_width
from peerstep.tools import Tool
from peerstep.tools.python import PythonSession

DEFAULT_CONTEXT = 8192
INTERRUPTED_NOTE = "[This reply was interrupted by the user.]"
WORKSPACE_NOTE = ("(The Python session already holds these names from the turns above: {}. They are defined now: "
                  "use them as they are; do not assign them again.)")


WORKSPACE = """
def __peerstep_workspace():
    import types
    shown = []
    for name, value in list(globals().items()):
        if name.startswith("_") or name in ("In", "Out", "exit", "quit", "get_ipython"):
            continue
        if isinstance(value, types.ModuleType):
            shown.append(f"{name} (module)")
        elif callable(value):
            shown.append(f"{name}() ({type(value).__name__})")
        else:
            shown.append(f"{name} ({type(value).__name__})")
    print("; ".join(shown[:40]) + (f"; and {len(shown) - 40} more" if len(shown) > 40 else ""))
__peerstep_workspace()
del __peerstep_workspace
"""


class ReplayedPython(PythonSession):
    """A Python sandbox that, when it first starts, reruns the session's cells so that it holds their state."""

    def __init__(self, cells: list[Cell], **options: Any) -> None:
        super().__init__(**options)
        self.cells = list(cells)
        self.mismatched: list[int] = []

    async def _ensure(self) -> Any:
        fresh = self.sandbox is None
        sandbox = await super()._ensure()
        if fresh and self.cells:
            for i, cell in enumerate(self.cells):
                result = await sandbox.run(cell.code, timeout=self.timeout_s)
                if result.to_observation(self.max_output_chars).strip() != cell.output.strip():
                    self.mismatched.append(i)
        return sandbox

    async def workspace(self) -> str:
        """The names the session's code defined, with their types: told to the model at the next turn, so it uses
        them instead of recomputing them (small models otherwise rerun the earlier turns' code). Not their values:
        shown a value, the 1.5B model typed it back as a literal instead of using the name (measured in
        tests/e2e/test_chat_e2e.py), which is no use for data too big to type."""
        if self.sandbox is None and not self.cells:
            return ""
        sandbox = await self._ensure()
        result = await sandbox.run(WORKSPACE, timeout=self.timeout_s)
        return result.stdout.strip()[:3000] if result.ok else ""


class ChatEnvironment(QuestionEnvironment):
    """A question that opens with the conversation so far; its Python sandbox may belong to the session."""

    name = "chat"

    def __init__(self, question: str, history: list[dict[str, Any]], *, python: PythonSession | None,
                 owns_python: bool, tools: list[Tool] | None, max_chars: int) -> None:
        super().__init__(question, tools=tools, python=python or False, max_chars=max_chars)
        self.history = history
        self.owns_python = owns_python

    async def reset(self) -> tuple[list[dict[str, Any]], list[Tool]]:
        messages, tools = await super().reset()
        return [*self.history, *messages], tools

    async def close(self) -> None:
        if self.owns_python:
            await super().close()


def check_text(text: str, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """A person's message, or an ``InputError`` in one line: empty, too long, or binary."""
    text = text.strip()
    if not text:
        raise InputError("the message is empty; type a question, or /help")
    control = sum(1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t\r")
    if control or "\ufffd" in text:
        raise InputError(f"the message holds {control or 'undecodable'} control or binary characters (a binary "
                         "paste?); send text")
    if len(text) > max_chars:
        raise InputError(f"the message is {len(text):,} characters; the limit is {max_chars:,} (the model's context "
                         "would overflow): put long data in a file the agent can read, or shorten it")
    return text


class Session:
    """A conversation with a tool-using agent, over many turns, checkpointed and resumable.

    ``async with Session(base_url=..., model=...) as s: turn = await s.send("...")``; ``s.stream("...")`` yields
    typed events (``peerstep.session``). Without ``base_url`` (or ``client``) the embedded engine starts once for
    the session. ``approve`` is an approval policy (``"python=ask"``, a policy file, an ``ApprovalPolicy``); a call
    it asks about goes to ``approver`` (a callable, sync or async) when given, else it is an ``ApprovalEvent`` in the
    stream, and in ``send`` it waits in ``s.approvals`` (an asyncio queue) for another task to answer it.
    ``resume=True`` reopens ``session_id`` (default: the last session) instead of starting a new one.
    """

    def __init__(self, *, client: ModelClient | None = None, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, engine: str | None = None, engine_config: Any = None,
                 strategy: str | None = None, n: int | None = None, agent: AgentConfig | None = None,
                 approve: ApprovalPolicy | str | None = None, approver: Approver | None = None,
                 tools: list[Tool] | None = None, python: bool = True, runs_dir: Path | None = None,
                 context_tokens: int | None = None, session_id: str | None = None, resume: bool = False,
                 max_chars: int = MAX_QUESTION_CHARS) -> None:
        self.runs_dir = runs_dir
        if resume:
            self.record = _store.load(session_id, runs_dir)
        else:
            self.record = SessionRecord(id=session_id or _store.new_id())
        rec = self.record
        self._client = client
        self._endpoint: Endpoint | None = None
        if resume and base_url is None and rec.engine is None:
            base_url = rec.base_url  # a server named by URL; an embedded engine is started again instead
        self._endpoint_args = {"base_url": base_url, "model": model or (rec.model if resume else None),
                               "api_key": api_key, "engine": engine or (rec.engine if resume else None),
                               "engine_config": engine_config}
        # a person reads each turn's reply: a program's bare printed number is no reply (answer_from_output off)
        self.agent = agent or (AgentConfig.model_validate(rec.agent) if resume and rec.agent
                               else AgentConfig(answer_from_output=False))
        if approve is not None:
            self.agent = self.agent.model_copy(update={"approve": _policy(approve)})
        self.set_strategy(strategy or rec.strategy, n, python=python)
        self.approver = approver
        self.tools = tools
        self.python = python
        self.context_tokens = context_tokens or _context_of(engine_config) or DEFAULT_CONTEXT
        if self.agent.context_tokens is None:  # the loop folds old outputs within a turn, too
            self.agent = self.agent.model_copy(update={"context_tokens": self.context_tokens})
        self.max_chars = max_chars
        self.approvals: asyncio.Queue[ApprovalEvent] = asyncio.Queue()
        self.notices: list[str] = []
        self._live: ReplayedPython | None = None
        self._opened = False

    # --- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Session:
        if self._client is None:
            self._endpoint = Endpoint(**self._endpoint_args)
            self._client = await self._endpoint.__aenter__()
            try:
                await self._client.check()
            except BaseException:
                await self._endpoint.__aexit__(None, None, None)
                raise
        rec = self.record
        embedded = self._endpoint is not None and self._endpoint.engine is not None
        rec.model = self._client.model
        rec.engine = self._endpoint.engine_name if embedded and self._endpoint is not None else None
        rec.base_url = None if embedded else self._client.base_url
        for turn in rec.turns:
            if turn.status == "running":  # the process died mid-turn: nothing of it carries over
                turn.status = "lost"
                turn.error = (f"the session stopped while this turn was in flight; its steps so far are in run "
                              f"{turn.run_id}, and none of it (conversation or Python state) is kept")
                asked = textwrap.shorten(turn.question, 60, placeholder="…")
                self.notices.append(f"turn {turn.index} ({asked}) was cut off when the session stopped: marked lost, "
                                    f"its steps stay in run {turn.run_id}")
        self._save()
        self._live = self._new_live()
        if self._live is not None and self._live.cells:
            await self._rebuild_now()
        self._opened = True
        return self

    async def _rebuild_now(self) -> None:
        """Replay the cells at once (a resume), so the person hears before the first question whether the state
        came back exactly: a cell whose output differs (randomness, time, files) may have set other values."""
        assert self._live is not None
        try:
            await self._live._ensure()
        except PeerstepError as exc:
            self.notices.append(f"the Python session could not be rebuilt: {exc}")
            return
        if self._live.mismatched:
            cells = ", ".join(str(i + 1) for i in self._live.mismatched)
            self.notices.append(f"replayed cell(s) {cells} printed something different this time (randomness, "
                                "time or files): variables they set may differ from before")

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._live is not None:
            await self._live.close()
            self._live = None
        if self._endpoint is not None:
            endpoint, self._endpoint = self._endpoint, None
            with contextlib.suppress(PeerstepError):
                if self._client is not None:
                    await self._client.close()
            await endpoint.__aexit__(None, None, None)
        self._opened = False

    # --- settings ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def turns(self) -> list[Turn]:
        return list(self.record.turns)

    @property
    def client(self) -> ModelClient:
        if self._client is None:
            raise InputError("the session is not open: use `async with Session(...) as s`")
        return self._client

    @property
    def policy(self) -> ApprovalPolicy:
        return self.agent.approve

    def offered_tools(self) -> list[Tool]:
        """The tools a turn offers the model (Python when on, the session's own tools, the answer tool), as its
        environment builds them; for listing, not running (the Python here is never started)."""
        env = ChatEnvironment("tools", [], python=PythonSession() if self.python else None, owns_python=False,
                              tools=self.tools, max_chars=100)
        return list(env.tools.values())

    def set_strategy(self, strategy: str, n: int | None = None, *, python: bool | None = None) -> None:
        """The strategy of the next turns (``single``, ``majority``, ``leap``, ...) and its trajectory count: ``n``,
        else the count already set when the strategy stays (or becomes ``single``), else the strategy's default."""
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if n is None:
            n = self.record.n if strategy in (self.record.strategy, "single") else strategy_width(strategy)
        if n < 1:
            raise InputError(f"n must be at least 1, got {n}")
        if (self.python if python is None else python) and strategy != "single":
            from peerstep.tools.sandbox import check_pool_size

            check_pool_size(n)
        self.record.strategy, self.record.n = strategy, n
        self._save_if_open()

    def set_approval(self, approve: ApprovalPolicy | str) -> ApprovalPolicy:
        """Replace the approval policy (``/approve``); a spec string changes only the tools it names."""
        policy = _policy(approve)
        if isinstance(approve, str) and not Path(approve).suffix:
            merged = self.policy
            for rule in policy.rules:
                merged = merged.with_rule(rule.tool, rule.action)
            policy = merged
        self.agent = self.agent.model_copy(update={"approve": policy})
        self._save_if_open()
        return policy

    def set_model(self, model: str) -> None:
        """Ask the server for another of the models it serves, from the next turn on."""
        self.client.model = model
        self.record.model = model
        self._save_if_open()

    # --- turns -------------------------------------------------------------------------------
    async def send(self, text: str, **options: Any) -> Turn:
        """Ask ``text``; the ended turn. Approval requests without an ``approver`` wait in ``self.approvals``."""
        turn: Turn | None = None
        async for event in self.stream(text, **options):
            if isinstance(event, ApprovalEvent):
                await self.approvals.put(event)
            elif isinstance(event, AnswerEvent):
                turn = event.turn
        assert turn is not None
        return turn

    async def stream(self, text: str, *, temperature: float | None = None) -> AsyncIterator[Event]:
        """Ask ``text`` and yield what happens as it happens; the last event is an ``AnswerEvent``.

        Bad input raises ``InputError`` before anything is recorded. Cancelling the consumer (Ctrl-C in the chat)
        stops the turn: the reply streamed so far is kept and logged, the turn is marked interrupted.
        """
        if not self._opened:
            raise InputError("the session is not open: use `async with Session(...) as s`")
        question = check_text(text, self.max_chars)
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for note in self.notices:
            yield NoticeEvent(note)
        self.notices.clear()
        turn = Turn(index=len(self.record.turns) + 1, question=question, strategy=self.record.strategy,
                    n=1 if self.record.strategy == "single" else self.record.n)
        self.record.turns.append(turn)
        self._save()
        task = asyncio.create_task(self._run_turn(turn, queue, temperature))
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                yield event
            await task  # re-raises a bug in the turn
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        yield AnswerEvent(turn)

    async def retry(self, **options: Any) -> AsyncIterator[Event]:
        """Re-sample the last turn: it is undone (kept on disk) and asked again, at temperature 0.7 at least."""
        last = self._last_kept()
        await self.undo()
        temperature = max(self.agent.sampling.temperature, 0.7)
        async for event in self.stream(last.question, temperature=temperature, **options):
            yield event

    async def undo(self) -> Turn:
        """Drop the last turn from the conversation (its run stays on disk) and rebuild the sandbox to match."""
        last = self._last_kept()
        last.status = "undone"
        self._save()
        if self._live is not None:
            await self._live.close()
        self._live = self._new_live()
        return last

    def _last_kept(self) -> Turn:
        kept = self.record.kept
        if not kept:
            raise InputError("there is no turn to undo or retry yet")
        return kept[-1]

    # --- one turn ----------------------------------------------------------------------------
    async def _run_turn(self, turn: Turn, queue: asyncio.Queue[Event | None], temperature: float | None) -> None:
        from peerstep._runner import arun

        # half the window for earlier turns; the other half is this turn's (its prompt, calls and outputs)
        earlier = [t for t in self.record.kept if t is not turn]
        history, note = fit([t.messages for t in earlier], self.context_tokens // 2)
        workspace = next((t.workspace for t in reversed(earlier) if t.workspace), "")
        if workspace:
            history.append({"role": "user", "content": WORKSPACE_NOTE.format(workspace)})
        if note:
            await queue.put(NoticeEvent(note))
        live = self._live
        made: list[ChatEnvironment] = []

        def factory() -> ChatEnvironment:
            first = not made
            python: PythonSession | None = None
            if self.python:
                python = live if first else ReplayedPython(self.record.cells())
            env = ChatEnvironment(turn.question, history, python=python, owns_python=not first,
                                  tools=self.tools, max_chars=self.max_chars)
            made.append(env)
            return env

        partial: dict[int, str] = {}

        def on_token(tid: int, delta: str) -> None:
            partial[tid] = partial.get(tid, "") + delta
            queue.put_nowait(TokenEvent(tid, delta))

        def on_record(rec: StepRecord) -> None:
            if rec.kind == StepKind.REASON:
                partial.pop(rec.trajectory_id, None)
            if turn.run_id is None:
                turn.run_id = rec.run_id
                self._save()
            queue.put_nowait(StepEvent(rec))

        agent = self.agent
        if temperature is not None:
            agent = agent.model_copy(deep=True)
            agent.sampling.temperature = temperature
        try:
            result = await arun(factory, self.client, strategy=turn.strategy, n=turn.n, agent=agent,
                                runs_dir=self.runs_dir, listeners=[on_record], on_token=on_token,
                                approver=self._approver(queue),
                                meta={"session": self.id, "turn": turn.index, "question": turn.question[:2000],
                                      "custom_tools": True})
        except asyncio.CancelledError:
            self._interrupted(turn, partial.get(0, ""))
            queue.put_nowait(None)
            raise
        except PeerstepError as exc:
            turn.status, turn.error, turn.ended_at = "error", str(exc), time.time()
            turn.messages = [{"role": "user", "content": turn.question}]
            self._save()
            queue.put_nowait(None)
            return
        except BaseException:
            turn.status, turn.ended_at = "error", time.time()
            self._save()
            queue.put_nowait(None)
            raise
        await self._adopt(turn, result)
        queue.put_nowait(None)

    async def _adopt(self, turn: Turn, result: Any) -> None:
        """Keep the turn: the answer, the trajectory it came from, its conversation and its Python cells."""
        from peerstep._checkpoint import python_cells

        answers = result.answers or {}
        tid = 0 if answers.get(0) == result.answer or result.answer is None else next(
            (t for t, a in sorted(answers.items()) if a == result.answer), 0)
        transcript = result.transcripts.get(tid) or []
        start = next((i for i, m in enumerate(transcript) if m.get("role") == "user"
                      and m.get("content") == turn.question), None)
        messages = wire_messages(transcript[start:]) if start is not None else [
            {"role": "user", "content": turn.question}]
        if result.answer is not None:
            messages.append({"role": "assistant", "content": f"The answer is {result.answer}."})
        with StepLog.open(result.run_id, self.runs_dir) as log:
            cells = [Cell(code=code, output=out) for _, code, out in python_cells(log, tid)]
        turn.answer, turn.error = result.answer, result.error
        turn.status = "done" if result.answer is not None else "error"
        turn.trajectory, turn.messages, turn.cells = tid, messages, cells
        turn.tokens, turn.steps, turn.ended_at = result.tokens, result.steps, time.time()
        self._save()
        if tid != 0 and self.python:  # the session's sandbox ran trajectory 0's cells: rebuild it from the adopted
            if self._live is not None:
                await self._live.close()
            self._live = self._new_live()
        await self._note_workspace(turn)

    async def _note_workspace(self, turn: Turn) -> None:
        if self._live is None or not turn.cells:
            return
        try:
            turn.workspace = await self._live.workspace()
        except PeerstepError as exc:  # the note is a help, not a need: the turn stands without it
            self.notices.append(f"could not list the Python session's names: {exc}")
        self._save()

    def _interrupted(self, turn: Turn, partial: str) -> None:
        """Ctrl-C mid-turn: keep what was streamed (logged as an interrupted reply) and the cells that ran."""
        from peerstep._checkpoint import python_cells

        turn.status, turn.partial, turn.ended_at = "interrupted", partial, time.time()
        reply = (partial.strip() + "\n" if partial.strip() else "") + INTERRUPTED_NOTE
        turn.messages = [{"role": "user", "content": turn.question}, {"role": "assistant", "content": reply}]
        if turn.run_id is not None:
            with contextlib.suppress(PeerstepError), StepLog.open(turn.run_id, self.runs_dir) as log:
                log.log(StepKind.REASON, trajectory_id=0, text=partial, finish_reason="interrupted",
                        data={"interrupted": True})
                turn.cells = [Cell(code=code, output=out) for _, code, out in python_cells(log, 0)]
        self._save()

    def _approver(self, queue: asyncio.Queue[Event | None]) -> Approver:
        """The session's approver when it has one (the trajectory awaits it, sync or async), else one that asks the
        stream's consumer with an ``ApprovalEvent`` and waits for its answer."""
        if self.approver is not None:
            return self.approver

        async def ask(request: ApprovalRequest) -> ApprovalDecision:
            future: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
            queue.put_nowait(ApprovalEvent(request, future))
            return await future

        return ask

    # --- helpers -----------------------------------------------------------------------------
    def _new_live(self) -> ReplayedPython | None:
        if not self.python:
            return None
        cells = self.record.cells()
        if cells:
            self.notices.append(f"the Python session is rebuilt by rerunning {len(cells)} cell"
                                f"{'s' if len(cells) != 1 else ''} of earlier turns")
        return ReplayedPython(cells)

    def _save(self) -> None:
        self.record.agent = self.agent.model_dump(mode="json")
        self.record.approve = self.agent.approve.model_dump(mode="json")
        _store.save(self.record, self.runs_dir)

    def _save_if_open(self) -> None:
        if getattr(self, "_opened", False):
            self._save()


def _policy(approve: ApprovalPolicy | str) -> ApprovalPolicy:
    return approve if isinstance(approve, ApprovalPolicy) else ApprovalPolicy.from_option(approve)


def _context_of(engine_config: Any) -> int | None:
    return getattr(engine_config, "context_length", None)
