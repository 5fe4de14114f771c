"""bench/peer_switches.py reads, from a LeaP run's step log, what each trajectory printed before reading its peers
and what it submitted after: the figures the README gives for what peer comments do."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from peerstep.steplog import StepKind, StepRecord, ToolInfo

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def switches():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("peer_switches")
    finally:
        sys.path.remove(str(BENCH))


def _observation(tid: int, output: str, ok: bool = True) -> StepRecord:
    return StepRecord(run_id="r", trajectory_id=tid, kind=StepKind.OBSERVATION, text=output,
                      tool=ToolInfo(name="python", output=output, ok=ok))


def test_trajectories_reads_the_last_program_output_before_the_first_comment(switches) -> None:  # type: ignore[no-untyped-def]
    records = [
        _observation(0, "100"), _observation(0, "105.0"),           # its last program before the comment: 105
        _observation(1, "Traceback ... line 3", ok=False),           # a failed program is no answer
        _observation(1, "63"),
        _observation(2, "63"),
        StepRecord(run_id="r", trajectory_id=-1, kind=StepKind.BARRIER),
        StepRecord(run_id="r", trajectory_id=0, kind=StepKind.PEER_INJECT, text='<comment> Peer 1: "63" </comment>'),
        StepRecord(run_id="r", trajectory_id=2, kind=StepKind.PEER_INJECT, text='<comment> Peer 1: "105" </comment>'),
        _observation(0, "63"),                                       # a re-run after the comment is not "alone"
        StepRecord(run_id="r", trajectory_id=0, kind=StepKind.FINAL, text="63"),
        StepRecord(run_id="r", trajectory_id=1, kind=StepKind.FINAL, text="63"),
        StepRecord(run_id="r", trajectory_id=2, kind=StepKind.FINAL, text="105"),  # took 105 without computing it
    ]
    assert switches.trajectories(records) == [
        {"trajectory": 0, "own": "105", "submitted": "63", "commented": True, "votes_with": "63"},
        {"trajectory": 1, "own": "63", "submitted": "63", "commented": False, "votes_with": "63"},
        {"trajectory": 2, "own": "63", "submitted": "105", "commented": True, "votes_with": "63"},
    ]


@pytest.mark.parametrize(("before", "after", "switched", "kind"), [
    (True, True, False, "right, kept"),
    (True, False, True, "right -> wrong"),
    (False, True, True, "wrong -> right"),
    (False, False, False, "wrong, kept"),
    (False, False, True, "wrong -> other wrong"),
    (None, True, True, "no program before peers"),
])
def test_classify(switches, before: bool | None, after: bool, switched: bool, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert switches.classify(before, after, switched) == kind


def test_same_number_reads_numbers_as_written(switches) -> None:  # type: ignore[no-untyped-def]
    assert switches.same_number("63.0", "63")
    assert switches.same_number("The answer is 1,250", "1250")
    assert not switches.same_number("63.5", "63")
    assert not switches.same_number("105", "63")
