"""``SharingConfig.switch_needs_rerun``: after reading peers, a changed answer counts only if the trajectory's own
tool printed it (scripted model; the rule's end-to-end run on the real model is in test_e2e_strategies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep import arun
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import Outputs, SharingConfig, outputs_around_comments, own_number, voting_answer
from peerstep.steplog import StepKind, StepLog, StepRecord, ToolInfo
from tests.scripted import PerTrajectoryClient


def _out(text: str, ok: bool = True, name: str = "python") -> StepRecord:
    return StepRecord(run_id="r", trajectory_id=0, kind=StepKind.OBSERVATION, text=text,
                      tool=ToolInfo(name=name, output=text, ok=ok))


COMMENT = StepRecord(run_id="r", trajectory_id=0, kind=StepKind.PEER_INJECT, text='<comment> Peer 1: "48" </comment>')


def test_outputs_are_split_at_the_first_comment() -> None:
    records = [_out("100"), _out("Traceback: NameError", ok=False), _out("105.0"), COMMENT, _out("63"), COMMENT,
               _out("64"), _out("Answer submitted: 64", name="submit_answer")]
    assert outputs_around_comments(records) == Outputs(("100", "105.0"), ("63", "64"), True)
    assert outputs_around_comments(records[:3]) == Outputs(("100", "105.0"), (), False)
    assert own_number(outputs_around_comments(records)) == "105"  # as written, zero decimals dropped
    assert own_number(Outputs(("no number here",), (), True)) is None
    assert own_number(Outputs((), ("63",), True)) is None


@pytest.mark.parametrize(("answer", "outputs", "votes_with"), [
    ("48", Outputs(("42",), (), True), "42"),                       # adopted a peer's number without computing it
    ("48", Outputs(("42",), ("6*8 = 48",), True), "48"),            # re-ran something that printed it: counts
    ("42", Outputs(("x = 42.0",), (), True), "42"),                 # kept its own number (42 is 42.0)
    ("48", Outputs(("42",), (), False), "48"),                      # never shown a comment: the rule does not apply
    ("48", Outputs((), (), True), "48"),                            # nothing printed before the comment
    ("48", Outputs(("done",), (), True), "48"),                     # no number printed before the comment
    ("48", Outputs(("41", "42"), ("41",), True), "42"),             # the last output before it is its own answer
    (None, Outputs(("42",), (), True), None),
])
def test_voting_answer(answer: str | None, outputs: Outputs, votes_with: str | None) -> None:
    assert voting_answer(answer, outputs) == votes_with


def calc(expr: str) -> str:
    return f'{{"name": "calculate", "arguments": {{"expression": "{expr}"}}}}'


def submit(answer: str) -> str:
    return f'{{"name": "submit_answer", "arguments": {{"answer": "{answer}"}}}}'


async def test_a_switch_without_a_re_run_votes_with_the_number_printed_before(tmp_path: Path) -> None:
    # after the comments: 0 takes 48 on its peers' word, 1 re-computes 6*7 and switches to 42, 2 keeps 48
    scripts = {0: [calc("6*7"), submit("48")], 1: [calc("6*8"), calc("6*7"), submit("42")],
               2: [calc("6*8"), submit("48")]}
    results = {}
    for rule in (False, True):
        config = ParallelConfig(n=3, max_rounds=4, round_steps=1,
                                sharing=SharingConfig(router="all", switch_needs_rerun=rule))
        log = StepLog.create(directory=tmp_path)
        results[rule] = await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"),
                                   PerTrajectoryClient(scripts), strategy="leap", parallel=config, log=log)
        with StepLog(log.path, log.run_id) as reader:
            assert len(list(reader.records(kind=StepKind.PEER_INJECT))) >= 3  # every trajectory read its peers
            aggregate = next(iter(reader.records(kind=StepKind.AGGREGATE)))
        if rule:
            assert aggregate.data["switch_needs_rerun"] == {"0": ["48", "42"]}
        else:
            assert "switch_needs_rerun" not in aggregate.data
    # what each trajectory submitted is the same either way; only what trajectory 0 votes with moved
    assert results[False].answers == results[True].answers == {0: "48", 1: "42", 2: "48"}
    assert results[False].answer == "48" and results[False].correct is False
    assert results[True].answer == "42" and results[True].correct is True
    assert results[True].decision.groups[0][1] == [0, 1]
