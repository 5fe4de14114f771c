"""Interactive agent sessions: a multi-turn conversation, checkpointed, resumable, with approvals.

``Session`` (async) and ``SyncSession`` (for scripts and notebooks) are the API; ``peerstep chat`` is the terminal
front end on the same code. A turn streams typed events (``TokenEvent``, ``StepEvent``, ``ApprovalEvent``,
``NoticeEvent``, ``AnswerEvent``).
"""

from peerstep.session._events import AnswerEvent, ApprovalEvent, Event, NoticeEvent, StepEvent, TokenEvent
from peerstep.session._session import Session, check_text
from peerstep.session._store import Cell, SessionRecord, Turn, list_sessions, load, sessions_dir
from peerstep.session._sync import SyncSession

__all__ = [
    "AnswerEvent",
    "ApprovalEvent",
    "Cell",
    "Event",
    "NoticeEvent",
    "Session",
    "SessionRecord",
    "StepEvent",
    "SyncSession",
    "TokenEvent",
    "Turn",
    "check_text",
    "list_sessions",
    "load",
    "sessions_dir",
]
