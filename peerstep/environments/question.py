"""A free-form question as an episode: the default tools plus ``submit_answer``.

This is what ``peerstep solve "..."`` runs. With a gold answer it also scores the
submission (1.0 when it matches), so the same environment serves quick evals.
"""

from __future__ import annotations

from typing import Any

from peerstep._errors import InputError
from peerstep.environments._base import Message, ToolEnvironment, call_arguments, observation, register_environment
from peerstep.grading import DEFAULT_CHECKER, Checker, grade
from peerstep.tools import Tool, default_tools
from peerstep.tools.python import PythonSession

MAX_QUESTION_CHARS = 20_000


def submit_answer(answer: str) -> str:
    """Submit your final answer. Call this once, when you are confident; the episode ends.

    Args:
        answer: The final answer only, e.g. a number with no units or a short phrase.
    """
    return answer


@register_environment("question")
class QuestionEnvironment(ToolEnvironment):
    """Ask one question; tools are the defaults unless given. ``checker`` grades the answer against ``gold``."""

    name = "question"

    def __init__(
        self,
        question: str,
        *,
        gold: str | None = None,
        tools: list[Tool] | None = None,
        checker: Checker = DEFAULT_CHECKER,
        max_chars: int = MAX_QUESTION_CHARS,
        python: PythonSession | bool = False,
    ) -> None:
        question = question.strip()
        if not question:
            raise InputError("the question is empty: pass the question text, e.g. peerstep solve \"What is 2+2?\"")
        if len(question) > max_chars:
            raise InputError(
                f"the question is {len(question):,} characters; the limit is {max_chars:,} "
                f"(the model's context would overflow). Shorten it, or raise the limit with --max-question-chars"
            )
        self.question = question
        self._gold = gold
        self.checker = checker
        self.answer: str | None = None
        self.python = PythonSession() if python is True else (python or None)
        extra = [self.python.tool()] if self.python is not None else []
        super().__init__([*(tools if tools is not None else default_tools()), *extra, Tool(submit_answer)])

    @property
    def gold(self) -> str | None:
        return self._gold

    async def reset(self) -> tuple[list[Message], list[Tool]]:
        self.done = False
        self.answer = None
        self.submitted = None
        self._asked_for_form = False
        return [{"role": "user", "content": self.question}], list(self.tools.values())

    async def close(self) -> None:
        if self.python is not None:
            await self.python.close()

    async def submit(self, call: dict[str, Any]) -> tuple[Message, float]:
        args = call_arguments(call)
        answer = str(args.get("answer", "")) if isinstance(args, dict) else str(args)
        self.answer = answer.strip()
        reward = 1.0 if grade(self.answer, self._gold, self.checker) else 0.0
        return observation(call.get("id") or "call", "submit_answer", f"Answer submitted: {self.answer}"), reward
