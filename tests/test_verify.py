"""Verifiers and aggregation: equivalence-aware votes, judges, PRM request/response mapping."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from peerstep.agent import Completion
from peerstep.grading import ExactChecker, NumericChecker
from peerstep.verify import (
    AnswerChecker,
    Candidate,
    LLMJudge,
    PeerAgreement,
    PRMClient,
    TrajectoryView,
    VerifierError,
    agreement_reached,
    backed_by,
    best_of_n,
    majority_vote,
    tool_backed_vote,
    verdict_score,
    weighted_vote,
)
from tests._json_server import json_server
from tests.scripted import ScriptedClient


def cands(*answers: str | None, scores: list[float | None] | None = None) -> list[Candidate]:
    scores = scores or [None] * len(answers)
    return [Candidate(trajectory_id=i, answer=a, score=s) for i, (a, s) in enumerate(zip(answers, scores,
                                                                                          strict=True))]


def test_majority_groups_equivalent_answers() -> None:
    d = majority_vote(cands("1/2", "7", "0.5", None))
    assert d.answer == "1/2" and d.support == 2 and d.total == 3
    assert d.groups == [("1/2", [0, 2], 2.0), ("7", [1], 1.0)]


def test_weighted_vote_can_overturn_the_majority() -> None:
    d = weighted_vote(cands("7", "7", "9", scores=[0.1, 0.2, 0.9]))
    assert d.answer == "9" and math.isclose(d.support, 0.9)


def test_tool_backed_vote_outweighs_answers_no_tool_stated() -> None:
    backing = [False, False, False, True, True]
    candidates = [c.model_copy(update={"backed": b}) for c, b in zip(cands("40", "40", "40", "42", "42.0"), backing,
                                                                        strict=True)]
    assert majority_vote(candidates).answer == "40"
    d = tool_backed_vote(candidates)
    assert d.answer == "42" and d.method == "tool-backed" and d.support == 2.0 and d.total == 3.5
    assert tool_backed_vote(cands("40", "40", "42")).answer == "40"  # backing unknown: a plain vote
    assert tool_backed_vote(cands(None)).answer is None


@pytest.mark.parametrize(("answer", "outputs", "backed"), [
    ("42", ["42\n"], True),
    ("155467.20", ["155467.2"], True),  # the same number, written differently
    ("3.14", ["pi is about 3.14159"], True),  # rounded to the answer's decimals
    ("1,000", ["total = 1000.0"], True),
    ("1/2", ["0.5"], True),  # a fraction compares exactly
    ("$20.90", ["20.9"], True),
    ("63", ["62", "64"], False),
    ("63", [], False),
    ("3.15", ["3.14159"], False),
    ("Paris", ["The capital of France is Paris."], True),
    ("Lyon", ["The capital of France is Paris."], False),
    ("", ["anything"], False),
    (None, ["42"], False),
])
def test_backed_by_a_tool_output(answer: str | None, outputs: list[str], backed: bool) -> None:
    assert backed_by(answer, outputs) is backed


def test_best_of_n_and_tie_break_by_votes() -> None:
    assert best_of_n(cands("7", "9", "9", scores=[0.9, 0.8, 0.3])).answer == "7"
    assert best_of_n(cands("7", "9", "9", scores=[0.8, 0.8, 0.3])).answer == "9"  # score tie: more votes
    assert best_of_n(cands("7", "9", "9", scores=[0.5, 0.5, 0.5])).answer == "9"
    assert best_of_n(cands(None, None)).answer is None


def test_agreement_reached() -> None:
    assert agreement_reached(cands("3", "3.0", "4"), 2) == "3"
    assert agreement_reached(cands("3", "4"), 2) is None
    assert agreement_reached(cands("3", "4", "4", "3"), 2, lead=1) is None  # a tie is not agreement
    assert agreement_reached(cands("3", "4", "4", "5"), 2, lead=1) == "4"  # the larger group, not the first
    assert agreement_reached(cands("3", "4", "4", "3"), 2) == "3"


def test_votes_group_by_the_task_checker() -> None:
    numeric = majority_vote(cands("12 apples", "12", "3 or 4", "3 or 4"), equivalent=NumericChecker())
    assert numeric.groups == [("12 apples", [0, 1], 2.0), ("3 or 4", [2, 3], 2.0)]  # same text: same vote
    assert len(majority_vote(cands("1/2", "0.5"), equivalent=ExactChecker()).groups) == 2
    assert agreement_reached(cands("1/2", "0.5"), 2, equivalent=ExactChecker()) is None
    assert agreement_reached(cands("1/2", "0.5"), 2) == "1/2"  # default: mathematical equivalence


def view(answer: str | None, **kw: Any) -> TrajectoryView:
    return TrajectoryView(trajectory_id=0, question="q", answer=answer, finished=True, **kw)


async def test_answer_checker_and_peer_agreement() -> None:
    assert (await AnswerChecker().score(view("0.50", gold="1/2"))).score == 1.0
    assert (await AnswerChecker().score(view("3", gold="1/2"))).score == 0.0
    with pytest.raises(VerifierError, match="gold"):
        await AnswerChecker().score(view("3"))
    agree = await PeerAgreement().score(view("4", peer_answers=["4.0", "5", None, "4"]))
    assert math.isclose(agree.score, 2 / 3) and "2 of 3" in agree.rationale


def test_verdict_from_logprobs() -> None:
    s = verdict_score("judge", "Yes", {"Yes": math.log(0.6), "No": math.log(0.2), "Maybe": math.log(0.2)})
    assert math.isclose(s.score, 0.75)
    assert verdict_score("judge", "No", None).score == 0.0
    with pytest.raises(VerifierError, match="neither Yes nor No"):
        verdict_score("judge", "Perhaps", None)


class JudgeModel(ScriptedClient):
    async def chat(self, messages: Any, **kwargs: Any) -> list[Completion]:
        self.requests_seen.append({"messages": messages, **kwargs})
        return [Completion(text="Yes", top_logprobs=[{"Yes": math.log(0.9), "No": math.log(0.1)}])]


async def test_llm_judge_asks_for_one_verdict_token() -> None:
    judge_model = JudgeModel([])
    score = await LLMJudge(judge_model).score(view("42", steps=["I multiplied 6 by 7", "[result] 42"]))
    assert math.isclose(score.score, 0.9)
    sent = judge_model.requests_seen[0]
    assert "Their final answer is: 42" in sent["messages"][0]["content"]
    assert "[result] 42" in sent["messages"][0]["content"]
    assert sent["sampling"].max_tokens == 1 and sent["sampling"].top_logprobs == 10


@pytest.fixture()
def prm_server() -> Iterator[tuple[str, list[dict[str, Any]], list[Any]]]:
    """A local stand-in serving vLLM's documented /pooling response format."""
    replies: list[Any] = []
    with json_server(lambda path, body: replies.pop(0)) as (url, received):
        yield url, received, replies


async def test_prm_client_request_and_response_mapping(prm_server: Any) -> None:
    url, received, replies = prm_server
    replies.append((200, {"id": "pool-1", "object": "list", "data": [
        {"index": 0, "object": "pooling", "data": [[0.1, 0.9], [0.4, 0.6], [0.3, 0.7]]}]}))
    prm = PRMClient(url, "Qwen/Qwen2.5-Math-PRM-7B")
    v = view("42", steps=["Step one.", "Step two.", "  ", "Step three."])
    score = await prm.score(v)
    assert score.step_scores == [0.9, 0.6, 0.7] and score.score == 0.6
    body = received[0]["body"]
    assert received[0]["path"] == "/v1/pooling"
    assert body["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
    assert body["messages"][1] == {"role": "user", "content": "q"}
    assert body["messages"][2]["content"] == "Step one.<extra_0>Step two.<extra_0>Step three.<extra_0>"
    replies.append((503, {"error": "overloaded"}))
    with pytest.raises(VerifierError, match="HTTP 503"):
        await prm.score(v)
    replies.append((200, "not json"))
    with pytest.raises(VerifierError, match="invalid JSON"):
        await prm.score(v)
    replies.append((200, {"data": []}))
    with pytest.raises(VerifierError, match="unexpected PRM response shape"):
        await prm.score(v)
    await prm.close()


async def test_prm_unreachable() -> None:
    prm = PRMClient("http://127.0.0.1:9/v1", "m")
    with pytest.raises(VerifierError, match="unreachable"):
        await prm.score(view("1", steps=["a"]))
    await prm.close()
