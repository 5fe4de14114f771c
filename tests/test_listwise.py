"""The list-wise judge: reading its verdict, and the ``listwise`` aggregation on the parallel graph (scripted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from peerstep import arun
from peerstep.agent import Completion
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepKind, StepLog
from peerstep.verify import ListwiseJudge, TrajectoryView, VerifierError, read_choice
from tests.scripted import PerTrajectoryClient, ScriptedClient, calc, submit

QUESTION = "A crate holds 6 rows of 7 jars. How many jars?"


def test_the_verdict_is_read_from_the_option_numbers_probabilities() -> None:
    top = {"2": math.log(0.6), "1": math.log(0.3), "Solution": math.log(0.05), "7": math.log(0.05)}
    choice = read_choice("2", top, 3)
    assert choice.index == 1
    assert choice.probabilities is not None and choice.probabilities[1] == pytest.approx(2 / 3, abs=1e-3)
    assert choice.probabilities[2] == 0  # "7" is not an option of three; "Solution" is no number
    # the probabilities decide even when the sampled text says otherwise (they are the same token at temperature 0,
    # but a server may return text and logprobs that disagree after detokenisation)
    assert read_choice("1", top, 3).index == 1


def test_without_logprobs_the_first_number_in_the_text_is_the_verdict() -> None:
    assert read_choice(" 3", None, 3).index == 2
    assert read_choice("Solution 1 is right", {"Solution": -0.1}, 2).index == 0  # no option among the top tokens
    assert read_choice("2", None, 2).probabilities is None


@pytest.mark.parametrize("text", ["Both are wrong", "", "4"])
def test_a_verdict_that_names_no_option_is_an_error(text: str) -> None:
    with pytest.raises(VerifierError, match="names"):
        read_choice(text, None, 3)


class VerdictLogprobs(ScriptedClient):
    """Answers every judge request with one token and these probabilities for the option numbers, by position."""

    def __init__(self, by_position: list[float]) -> None:
        super().__init__([])
        self.by_position = by_position

    async def chat(self, messages, *, sampling=None, **kwargs):  # type: ignore[no-untyped-def]
        self.requests_seen.append({"messages": list(messages), "sampling": sampling})
        top = {str(i + 1): math.log(p) for i, p in enumerate(self.by_position)}
        return [Completion(text="1", top_logprobs=[top], completion_tokens=1)]


def _options(*pairs: tuple[str, str]) -> list[TrajectoryView]:
    return [TrajectoryView(trajectory_id=t, question=QUESTION, answer=a, steps=[w, f"[result] {a}"], gold="7777")
            for t, (a, w) in enumerate(pairs)]


async def test_two_orders_cancel_a_position_bias() -> None:
    # a judge that always gives the last of two options 0.6: asked in both orders, each option gets 0.5, a tie
    # that goes to the first option (the majority's); asked once, the position would decide
    options = _options(("42", "6*7"), ("13", "6+7"))
    both = await ListwiseJudge(VerdictLogprobs([0.4, 0.6])).choose(QUESTION, options)
    assert both.index == 0 and both.probabilities == [0.5, 0.5]
    once = await ListwiseJudge(VerdictLogprobs([0.4, 0.6]), orders=1).choose(QUESTION, options)
    assert once.index == 1
    # content that outweighs the position survives the averaging: 0.9 / 0.1 in one order, 0.3 / 0.7 reversed
    client = VerdictLogprobs([0.9, 0.1])
    judge = ListwiseJudge(client)
    first = await judge.choose(QUESTION, options)
    assert first.index == 0
    prompts = [r["messages"][0]["content"] for r in client.requests_seen]
    assert "Final answer of solution 1: 42" in prompts[0] and "Final answer of solution 1: 13" in prompts[1]


async def test_without_logprobs_the_orders_must_agree() -> None:
    options = _options(("42", "6*7"), ("13", "6+7"))
    agreed = await ListwiseJudge(ScriptedClient(["1", "2"])).choose(QUESTION, options)
    assert agreed.index == 0
    with pytest.raises(VerifierError, match="follows the position"):
        await ListwiseJudge(ScriptedClient(["2", "2"])).choose(QUESTION, options)


async def test_the_judge_sees_every_option_s_work_and_answer_but_no_gold() -> None:
    client = ScriptedClient(["1"])
    judge = ListwiseJudge(client, orders=1)
    options = _options(("42", "6*7"), ("13", "6+7"))
    choice = await judge.choose(QUESTION, options)
    assert choice.index == 0
    prompt = client.requests_seen[0]["messages"][0]["content"]
    assert "Solution 1:\n6*7" in prompt and "Final answer of solution 2: 13" in prompt and "(1, 2)" in prompt
    assert "7777" not in prompt  # the views' gold is not shown
    assert client.requests_seen[0]["sampling"].max_tokens == 1
    with pytest.raises(VerifierError, match="at least two"):
        await judge.choose(QUESTION, options[:1])


async def test_the_judge_can_overrule_the_majority(tmp_path: Path) -> None:
    # 48, 42, 48: the vote says 48; the judge, shown [48 (2 votes), 42] and then [42, 48], picks 42 both times --
    # through the run's own model (the last entries of trajectory 0's script: the judge asks without a seed)
    client = PerTrajectoryClient({0: [calc("6*8"), submit("48"), "2", "1"], 1: [calc("6*7"), submit("42")],
                                  2: [submit("48")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment(QUESTION, gold="42"), client, strategy="listwise", n=3,
                        log=log)
    assert result.answer == "42" and result.correct is True
    assert result.decision.method == "listwise" and result.decision.support == 1.0
    judge_requests = [r for r in client.requests_seen if r["sampling"].max_tokens == 1]
    assert len(judge_requests) == 2
    prompt = judge_requests[0]["messages"][0]["content"]
    assert "Final answer of solution 1: 48" in prompt and "Final answer of solution 2: 42" in prompt
    assert "6*7" in prompt  # the work of the trajectory behind the option, not only its answer
    with StepLog(log.path, log.run_id) as reader:
        aggregate = next(iter(reader.records(kind=StepKind.AGGREGATE)))
    kept = aggregate.data["listwise"]
    assert kept["options"] == ["48", "42"] and kept["choice"] == 1 and kept["majority"] == "48"


async def test_a_judge_on_another_model_decides_and_the_run_s_own_model_is_not_asked(tmp_path: Path) -> None:
    # arun(judge=...): a larger model judges a small model's samples; the trajectories' scripts hold no verdicts,
    # so had the run's own model been asked to judge it would have run out of replies and failed the run
    client = PerTrajectoryClient({0: [submit("48")], 1: [calc("6*7"), submit("42")], 2: [submit("48")]})
    judge_model = ScriptedClient(["2", "1"], model="judge")
    result = await arun(lambda: QuestionEnvironment(QUESTION, gold="42"), client, strategy="listwise", n=3,
                        log=StepLog.create(directory=tmp_path), judge=ListwiseJudge(judge_model))
    assert result.answer == "42" and result.decision.method == "listwise"
    assert len(judge_model.requests_seen) == 2 and not judge_model.replies
    assert all(r["sampling"].max_tokens != 1 for r in client.requests_seen)


async def test_agreeing_answers_need_no_judge(tmp_path: Path) -> None:
    # no script entry is left for a judge: had it asked, the scripted model would have failed the run
    client = PerTrajectoryClient({0: [submit("42")], 1: [submit("42.0")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment(QUESTION, gold="42"), client, strategy="listwise", n=2,
                        log=log)
    assert result.answer == "42" and result.decision.method == "listwise"
    assert len(client.requests_seen) == 2
    with StepLog(log.path, log.run_id) as reader:
        aggregate = next(iter(reader.records(kind=StepKind.AGGREGATE)))
    assert aggregate.data["listwise"] is None


async def test_an_unreadable_verdict_is_logged_and_the_vote_decides(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [submit("48"), "Hmm", "1"], 1: [submit("42")], 2: [submit("48")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment(QUESTION, gold="42"), client, strategy="listwise", n=3,
                        log=log)
    assert result.answer == "48" and result.decision.method == "majority (list-wise judge failed)"
    with StepLog(log.path, log.run_id) as reader:
        errors = [r for r in reader.records(kind=StepKind.ERROR) if r.trajectory_id == -1]
        aggregate = next(iter(reader.records(kind=StepKind.AGGREGATE)))
    assert len(errors) == 1 and "names no solution: 'Hmm'" in (errors[0].text or "")
    assert errors[0].data["stage"] == "listwise"
    assert "Hmm" in aggregate.data["listwise"]["error"]
