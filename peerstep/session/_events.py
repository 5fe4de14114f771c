"""What a session's turn streams: tokens, steps, approval requests, notices and the turn's end, as typed events.

``Session.stream`` yields them in the order they happen; a UI (the terminal chat, a notebook) renders them. An
``ApprovalEvent`` is a question to the caller: the turn's trajectory waits until one of its methods is called
(other trajectories keep running meanwhile).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from peerstep.agent._approval import ApprovalDecision, ApprovalRequest
from peerstep.session._store import Turn
from peerstep.steplog import StepRecord


@dataclass
class TokenEvent:
    """Text the model generated, as it is generated."""

    trajectory_id: int
    text: str


@dataclass
class StepEvent:
    """A step as it was logged: a reply, a tool call, a tool's output, a barrier, the vote, an error."""

    record: StepRecord


@dataclass
class NoticeEvent:
    """Something the person should know that is not a step (old context folded, the sandbox replayed)."""

    text: str


@dataclass
class ApprovalEvent:
    """A tool call waits for a decision: call exactly one of ``approve``, ``edit``, ``reject``, ``end``."""

    request: ApprovalRequest
    future: asyncio.Future[ApprovalDecision] = field(repr=False)

    def decide(self, decision: ApprovalDecision) -> None:
        if not self.future.done():
            self.future.get_loop().call_soon_threadsafe(_settle, self.future, decision)

    def approve(self, by: str = "person") -> None:
        self.decide(ApprovalDecision(action="approve", by=by))

    def edit(self, arguments: dict[str, Any], by: str = "person") -> None:
        self.decide(ApprovalDecision(action="edit", arguments=arguments, by=by))

    def reject(self, reason: str = "", by: str = "person") -> None:
        self.decide(ApprovalDecision(action="reject", reason=reason, by=by))

    def end(self, by: str = "person") -> None:
        self.decide(ApprovalDecision(action="end", by=by))


def _settle(future: asyncio.Future[ApprovalDecision], decision: ApprovalDecision) -> None:
    if not future.done():
        future.set_result(decision)


@dataclass
class AnswerEvent:
    """The turn ended (answered, failed, or interrupted): the last event of a turn."""

    turn: Turn


Event = TokenEvent | StepEvent | NoticeEvent | ApprovalEvent | AnswerEvent
