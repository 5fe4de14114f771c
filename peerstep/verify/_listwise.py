"""A list-wise judge: the model sees the N candidate solutions side by side and picks one.

A point-wise judge (``LLMJudge``) asks of each answer alone "is this right?", and a small model says Yes to
almost anything it is shown. Shown the disagreeing solutions together -- each one's work, tool results and final
answer -- it only has to say which one holds up, the comparison a reader makes. The judge is asked only when the
answers disagree (agreeing trajectories need no judge), once per distinct answer, not per trajectory: equivalent
answers are one option, shown with the work of the trajectory that gave it first.

The verdict is one token, read from its log-probabilities where the server returns them (the option numbers'
probabilities, the most probable option wins), else from the text. Small models pick by position as much as by
content (the embedded 1.5B gives the last of two options ~0.6 whichever it is), so by default the judge is asked
twice, the options listed by votes and then in reverse, and each option's probabilities are added over the two
orders: a position bias cancels, what is left is the judge's view of the content. ``orders=1`` asks once.

Error contract: ``choose`` raises ``VerifierError`` when the server fails, a verdict names no option, or (without
logprobs) the two orders pick different options; the parallel graph then logs the error as a step and lets the
majority vote decide.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from peerstep._errors import ModelServerError
from peerstep.client import ModelClient, SamplingParams
from peerstep.verify._verifiers import TrajectoryView, VerifierError

LISTWISE_PROMPT = """Several solvers answered the same question and disagree. Compare their work and decide \
which final answer is correct. Check each computation against the question; a tool result is only as good as the \
code or expression that produced it.

Question: {question}

{options}

Which solution's final answer is correct? Reply with its number only ({numbers})."""


class Choice(BaseModel):
    """The judge's pick among the options (0-based), and how sure it was."""

    index: int
    probabilities: list[float] | None = Field(default=None, description="per option, from the verdict token's "
                                              "log-probabilities (None when the server gave none)")
    rationale: str = ""


class ListwiseJudge:
    """Picks one of several candidate solutions. ``client`` may be the policy's server or another model's."""

    name = "listwise"

    def __init__(self, client: ModelClient, max_chars_per_option: int = 1500, orders: int = 2) -> None:
        if orders not in (1, 2):
            raise ValueError("orders is 1 (as listed) or 2 (as listed and reversed)")
        self.client = client
        self.max_chars_per_option = max_chars_per_option
        self.orders = orders

    def prompt(self, question: str, options: Sequence[TrajectoryView]) -> str:
        blocks = []
        for i, view in enumerate(options, start=1):
            blocks.append(f"Solution {i}:\n{view.transcript(self.max_chars_per_option)}\n"
                          f"Final answer of solution {i}: {view.answer}")
        numbers = ", ".join(str(i) for i in range(1, len(options) + 1))
        return LISTWISE_PROMPT.format(question=question, options="\n\n".join(blocks), numbers=numbers)

    async def choose(self, question: str, options: Sequence[TrajectoryView]) -> Choice:
        """The option whose answer the judge believes; ``VerifierError`` when it cannot say."""
        if len(options) < 2:
            raise VerifierError("a list-wise judge needs at least two options")
        n = len(options)
        if self.orders == 1:
            return await self._ask(question, options)
        # both orders go out together (a batching server serves them as one batch)
        forward, backward = await asyncio.gather(self._ask(question, options),
                                                 self._ask(question, list(reversed(options))))
        return combine_orders(forward, backward, n)

    async def _ask(self, question: str, options: Sequence[TrajectoryView]) -> Choice:
        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20)
        messages = [{"role": "user", "content": self.prompt(question, options)}]
        try:
            out = (await self.client.chat(messages, sampling=params))[0]
        except ModelServerError as exc:
            raise VerifierError(f"list-wise judge request failed: {exc}") from exc
        return read_choice(out.text, out.top_logprobs[0] if out.top_logprobs else None, len(options))


def combine_orders(forward: Choice, backward: Choice, n: int) -> Choice:
    """One verdict from the verdicts on the options as listed and reversed: each option's probability averaged
    over the two orders; without probabilities the two picks must be the same option, else ``VerifierError``."""
    if forward.probabilities and backward.probabilities:
        probs = [(forward.probabilities[i] + backward.probabilities[n - 1 - i]) / 2 for i in range(n)]
        best = max(range(n), key=lambda i: (probs[i], -i))
        return Choice(index=best, probabilities=[round(p, 4) for p in probs],
                      rationale=f"P(solution {best + 1})={probs[best]:.3f}, averaged over both orders")
    picks = [forward.index, n - 1 - backward.index]
    if picks[0] != picks[1]:
        raise VerifierError(f"the list-wise verdict follows the position, not the content: options {picks[0] + 1} "
                            f"and {picks[1] + 1} were picked in the two orders")
    return Choice(index=picks[0], rationale=f"picked in both orders (no logprobs): {forward.rationale}")


def listwise_options(groups: Sequence[tuple[str, list[int], float]], question: str,
                     steps_of: Callable[[int], list[str]]) -> tuple[list[tuple[str, list[int], float]],
                                                                  list[TrajectoryView]]:
    """A vote's answer groups (answer, trajectory ids, weight) as the judge's options, most votes first (ties in
    order of first appearance), each shown with the work of its first trajectory (``steps_of(tid)``)."""
    ordered = sorted(groups, key=lambda g: -g[2])
    return ordered, [TrajectoryView(trajectory_id=ids[0], question=question, answer=rep, steps=steps_of(ids[0]),
                                    finished=True) for rep, ids, _ in ordered]


def read_choice(text: str, top: dict[str, float] | None, n: int) -> Choice:
    """The option a verdict names: by the option numbers' probabilities among the top tokens when given, else the
    first number in the text. A number outside 1..n, or none, is a ``VerifierError``."""
    if top:
        probs = [0.0] * n
        for token, logprob in top.items():
            word = token.strip()
            if word.isdigit() and 1 <= int(word) <= n:
                probs[int(word) - 1] += math.exp(logprob)
        total = sum(probs)
        if total > 0:
            probs = [p / total for p in probs]
            best = max(range(n), key=lambda i: (probs[i], -i))
            return Choice(index=best, probabilities=[round(p, 4) for p in probs],
                          rationale=f"P(solution {best + 1})={probs[best]:.3f} from the verdict token's logprobs")
    found = re.search(r"\d+", text)
    if found is None:
        raise VerifierError(f"the list-wise verdict names no solution: {text[:50]!r}")
    number = int(found.group())
    if not 1 <= number <= n:
        raise VerifierError(f"the list-wise verdict names solution {number}, but there are {n}")
    return Choice(index=number - 1, rationale=f"said {number} (no logprobs)")
