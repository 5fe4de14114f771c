"""Verifiers: score a trajectory (and optionally each step) in [0, 1], with a rationale.

One small interface, so that adding a scorer never means editing library code:

- ``AnswerChecker``: the answer against a known gold answer, by the task's checker (default:
  mathematical equivalence). An oracle: for evaluation and training data, never for choosing an
  answer at test time.
- ``LLMJudge``: asks a model (the policy's own endpoint, or another) whether the solution is
  correct; the score is P(Yes) from the verdict token's logprobs when the server returns them.
- ``PRMClient``: a process reward model served by vLLM's pooling endpoint (``/pooling``), one
  score per step.
- ``PeerAgreement``: the share of other finished trajectories whose answer is equivalent (by the
  task's checker, when given).
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from peerstep._errors import ModelServerError, PeerstepError
from peerstep.client import ModelClient, SamplingParams
from peerstep.grading import DEFAULT_CHECKER, Checker, grade


class TrajectoryView(BaseModel):
    """What a verifier sees of one trajectory: plain data, so verifiers can run anywhere."""

    trajectory_id: int
    question: str
    answer: str | None = None
    steps: list[str] = Field(default_factory=list, description="the reasoning and tool results, in order")
    process_steps: list[str] = Field(default_factory=list, description=(
        "the steps as process supervision counts them (one model call with its tool calls and results) in the text "
        "the PRM exports write, when the run gives them: what a PRM trained on those exports must read"))
    gold: str | None = None
    peer_answers: list[str | None] = Field(default_factory=list)
    finished: bool = False

    def transcript(self, max_chars: int = 6000) -> str:
        text = "\n\n".join(self.steps)
        return text if len(text) <= max_chars else "…" + text[-max_chars:]


class VerifierScore(BaseModel):
    verifier: str
    score: float = Field(ge=0.0, le=1.0)
    rationale: str = ""
    step_scores: list[float] | None = None


class VerifierError(PeerstepError):
    """A verifier could not produce a score (its server failed, or its answer was unreadable)."""


class Verifier(ABC):
    """Scores one trajectory. ``partial_ok``: can judge an unfinished trajectory (used at barriers)."""

    name: str = "verifier"
    partial_ok: bool = False

    @abstractmethod
    async def score(self, view: TrajectoryView) -> VerifierScore:
        """Score ``view`` in [0, 1]; raise VerifierError when no score can be given."""


class AnswerChecker(Verifier):
    """1.0 when the answer passes ``checker`` against the gold (the task's checker: the rule of its reward)."""

    name = "answer"

    def __init__(self, checker: Checker = DEFAULT_CHECKER) -> None:
        self.checker = checker

    async def score(self, view: TrajectoryView) -> VerifierScore:
        if view.gold is None:
            raise VerifierError("the answer checker needs a gold answer")
        if view.answer is None:
            return VerifierScore(verifier=self.name, score=0.0, rationale="no answer")
        ok = grade(view.answer, view.gold, self.checker)
        return VerifierScore(verifier=self.name, score=1.0 if ok else 0.0,
                             rationale=f"{view.answer!r} {'matches' if ok else 'does not match'} gold {view.gold!r}")


class PeerAgreement(Verifier):
    """The share of finished peers whose answer ``checker`` matches with this one (read as the gold)."""

    name = "agreement"

    def __init__(self, checker: Checker = DEFAULT_CHECKER) -> None:
        self.checker = checker

    async def score(self, view: TrajectoryView) -> VerifierScore:
        peers = [a for a in view.peer_answers if a]
        if view.answer is None:
            return VerifierScore(verifier=self.name, score=0.0, rationale="no answer")
        if not peers:
            return VerifierScore(verifier=self.name, score=0.5, rationale="no finished peers to compare with")
        agree = sum(p.strip() == view.answer.strip() or grade(view.answer, p, self.checker) for p in peers)
        return VerifierScore(verifier=self.name, score=agree / len(peers),
                             rationale=f"{agree} of {len(peers)} peers give an equivalent answer")


JUDGE_PROMPT = """You are checking another solver's work.

Question: {question}

Their work (reasoning and tool results):
{transcript}

{claim}
Reply with exactly one word: Yes or No."""


class LLMJudge(Verifier):
    """A generative judge. ``client`` may point at the policy's server or at a different model."""

    name = "judge"
    partial_ok = True

    def __init__(self, client: ModelClient, max_transcript_chars: int = 6000) -> None:
        self.client = client
        self.max_transcript_chars = max_transcript_chars

    async def score(self, view: TrajectoryView) -> VerifierScore:
        claim = (f"Their final answer is: {view.answer}\nIs this final answer correct?" if view.finished
                 else "They have not finished. Is their reasoning so far correct and on track?")
        prompt = JUDGE_PROMPT.format(question=view.question, transcript=view.transcript(self.max_transcript_chars),
                                     claim=claim)
        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=10)
        try:
            out = (await self.client.chat([{"role": "user", "content": prompt}], sampling=params))[0]
        except ModelServerError as exc:
            raise VerifierError(f"judge request failed: {exc}") from exc
        return verdict_score(self.name, out.text, out.top_logprobs[0] if out.top_logprobs else None)


def verdict_score(name: str, text: str, top: dict[str, float] | None) -> VerifierScore:
    """P(Yes) normalised over the Yes/No tokens when logprobs exist, else 1/0 from the text."""
    if top:
        yes = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() in ("yes", "y"))
        no = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() in ("no", "n"))
        if yes + no > 0:
            p = yes / (yes + no)
            return VerifierScore(verifier=name, score=p, rationale=f"P(Yes)={p:.3f} from verdict-token logprobs")
    word = text.strip().lower()
    if word.startswith("yes"):
        return VerifierScore(verifier=name, score=1.0, rationale="said Yes (no logprobs)")
    if word.startswith("no"):
        return VerifierScore(verifier=name, score=0.0, rationale="said No (no logprobs)")
    raise VerifierError(f"the judge's verdict is neither Yes nor No: {text[:50]!r}")


class PRMClient(Verifier):
    """A process reward model behind vLLM's pooling API.

    Request (vLLM ``POST /pooling``, chat form): the question as the user turn and the steps joined by
    ``step_separator`` (Qwen2.5-Math-PRM uses ``<extra_0>``) as the assistant turn. Response:
    ``{"data": [{"data": [[p_bad, p_good], ...]}]}`` — one pair per separator (or one float per step).
    The trajectory score is the minimum step score (the weakest step bounds the solution).

    With ``checkpoint`` (the directory of a PRM trained by ``peerstep prm train``, served as it is by
    ``vllm serve DIR --runner pooling``), the request is the token ids TRL trained on (its ``tokenize_row``, from
    the checkpoint's tokenizer: ``{"input": ids, "task": "token_classify"}``), the answer one probability pair per
    token, and the step scores are read at the step separators, as ``TransformersPRM`` reads them in-process: a
    server tokenising the joined text itself could merge a separator with its neighbours.
    """

    name = "prm"
    partial_ok = True

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 step_separator: str = "<extra_0>", timeout: float = 60.0,
                 system_prompt: str = "Please reason step by step.",
                 transport: httpx.AsyncBaseTransport | None = None, checkpoint: str | Path | None = None) -> None:
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.good_label = 1
        self._tokenizer: Any = None
        if self.checkpoint is not None:
            from peerstep.verify._transformers_prm import read_meta

            step_separator, self.good_label = read_meta(self.checkpoint)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.step_separator = step_separator
        self.system_prompt = system_prompt
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)

    def request_body(self, view: TrajectoryView) -> dict[str, Any]:
        steps = [s.strip() for s in view.steps if s.strip()]
        assistant = "".join(s + self.step_separator for s in steps)
        return {"model": self.model, "messages": [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": view.question},
            {"role": "assistant", "content": assistant}]}

    @staticmethod
    def parse_scores(payload: Any) -> list[float]:
        try:
            rows = payload["data"][0]["data"]
        except (KeyError, IndexError, TypeError) as exc:
            raise VerifierError(f"unexpected PRM response shape: {str(payload)[:200]}") from exc
        scores = []
        for row in rows:
            if isinstance(row, list) and len(row) == 2:
                scores.append(float(row[1]))
            elif isinstance(row, int | float):
                scores.append(float(row))
            else:
                raise VerifierError(f"unexpected PRM step score {row!r}")
        return scores

    def token_request(self, view: TrajectoryView) -> tuple[dict[str, Any], list[int]]:
        """The ``checkpoint`` form: the body, and the positions of the step separators in its token ids."""
        from peerstep.verify._transformers_prm import prm_tokens

        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint))
        steps = [s for s in (view.process_steps or view.steps) if s.strip()]
        ids, at = prm_tokens(self._tokenizer, view.question, steps, self.step_separator)
        return {"model": self.model, "input": ids, "task": "token_classify"}, at

    async def score(self, view: TrajectoryView) -> VerifierScore:
        at: list[int] | None = None
        if self.checkpoint is not None:
            try:
                body, at = await asyncio.to_thread(self.token_request, view)
            except Exception as exc:  # no tokenizer there, or TRL missing: the graph logs it and goes on
                raise VerifierError(f"cannot tokenise for the PRM at {self.checkpoint}: {exc}") from exc
            if not at:
                raise VerifierError("the trajectory has no steps for the PRM to score")
        else:
            body = self.request_body(view)
        try:
            resp = await self._http.post(f"{self.base_url}/pooling", json=body)
        except httpx.HTTPError as exc:
            raise VerifierError(f"PRM server unreachable at {self.base_url}: {exc}") from exc
        if resp.status_code != 200:
            raise VerifierError(f"PRM server {self.base_url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            payload = resp.json()
        except ValueError as exc:
            raise VerifierError(f"PRM server {self.base_url} sent invalid JSON") from exc
        steps = self.parse_scores(payload) if at is None else self.token_scores(payload, at)
        if not steps:
            raise VerifierError("the PRM returned no step scores")
        score = min(max(min(steps), 0.0), 1.0)
        return VerifierScore(verifier=self.name, score=score, step_scores=steps,
                             rationale=f"min over {len(steps)} step scores")

    def token_scores(self, payload: Any, at: list[int]) -> list[float]:
        """P(good) at the separator positions from a per-token ``token_classify`` answer."""
        try:
            rows = payload["data"][0]["data"]
            return [float(rows[i][self.good_label]) for i in at]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise VerifierError(f"unexpected PRM response shape for {max(at) + 1}+ tokens: "
                                f"{str(payload)[:200]}") from exc

    async def close(self) -> None:
        await self._http.aclose()
