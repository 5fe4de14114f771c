"""``peerstep label --peers``: each LeaP injection labelled by the difference its comment makes, with values known
exactly from scripted continuations that read the conversation they are given."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from peerstep import StepKind, StepLog, arun
from peerstep._errors import InputError
from peerstep._label_peers import alabel_peers, effects_text, peer_effects
from peerstep._runner import afork
from peerstep.cli import app
from peerstep.graphs import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.view import build_model
from tests.label_script import ContinuationServer
from tests.scripted import PerTrajectoryClient, ScriptedClient, calc, submit

QUESTION = "What is 6*7?"
# trajectory 0 hears trajectory 1's wrong conclusion, trajectory 1 hears trajectory 0's right one
SUMMARIES = {0: "the product is 42", 1: "the product is 48"}


def parent_scripts() -> dict[int, list[Any]]:
    return {0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("48")]}


async def leap_run(runs_dir: Path, gold: str | None = "42") -> str:
    """Two trajectories, one step per round: after round 1 each hears the other once, then both answer."""
    config = ParallelConfig(n=2, max_rounds=3, round_steps=1, sharing=SharingConfig())
    result = await arun(QUESTION, PerTrajectoryClient(parent_scripts(), summaries=SUMMARIES), strategy="leap",
                        parallel=config, gold=gold, python=False, runs_dir=runs_dir)
    assert result.status == "done"
    return result.run_id


def comment_of(messages: Sequence[dict[str, Any]]) -> str | None:
    return next((m["content"] for m in messages if m["role"] == "user" and "<comment>" in (m["content"] or "")),
                None)


class Continuations(ScriptedClient):
    """Continuations decided by what the conversation holds and by the continuation's seed (its fork trajectory id):
    the comment "42" makes all 4 answer right, the comment "48" none, no comment 2 of 4 (seeds 0 and 1)."""

    def __init__(self) -> None:
        super().__init__([])
        self.in_flight = self.peak = 0

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: Any = None, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.05)  # long enough for requests sent together to overlap
        finally:
            self.in_flight -= 1
        seed = sampling.seed if sampling is not None and sampling.seed is not None else 0
        comment = comment_of(messages)
        right = seed < 2 if comment is None else SUMMARIES[0] in comment
        self.replies = [submit("42" if right else "41")]
        return await super().chat(messages, sampling=sampling, **kwargs)


EXPECTED = {0: (0.0, 0.5, -0.5), 1: (1.0, 0.5, 0.5)}  # receiving trajectory -> (value with, without, effect)


def records(run_id: str, runs_dir: Path, kind: StepKind | None = None) -> list[Any]:
    with StepLog.open(run_id, runs_dir) as log:
        return list(log.records(kind=kind))


async def test_each_injection_gets_the_known_effect_of_its_comment(tmp_path: Path) -> None:
    run_id = await leap_run(tmp_path)
    injections = records(run_id, tmp_path, StepKind.PEER_INJECT)
    assert sorted(r.trajectory_id for r in injections) == [0, 1]
    client = Continuations()
    summary = await alabel_peers([run_id], client, k=4, runs_dir=tmp_path)
    assert summary.labelled == 2 and summary.rollouts == 16 and summary.skipped == {}

    labels = {r.trajectory_id: r for r in records(run_id, tmp_path, StepKind.LABEL)}
    for tid, (with_value, without_value, effect) in EXPECTED.items():
        rec = labels[tid]
        inject = next(r for r in injections if r.trajectory_id == tid)
        assert rec.parent_id == inject.step_id == rec.data["inject_step"]
        assert rec.data["peer"] is True and rec.data["sources"] == [1 - tid]
        assert rec.data["with"]["value"] == with_value and rec.data["without"]["value"] == without_value
        assert rec.data["with"]["n"] == rec.data["without"]["n"] == 4
        assert rec.data["effect"] == effect
        # the evidence: two forks of the injection step, the second one without the comment
        with StepLog.open(rec.data["with"]["fork_run"], tmp_path) as fork:
            assert fork.meta()["fork"] == {"run": run_id, "step": inject.step_id, "trajectory": tid}
        with StepLog.open(rec.data["without"]["fork_run"], tmp_path) as fork:
            assert fork.meta()["fork"] == {"run": run_id, "step": inject.step_id, "trajectory": tid,
                                           "without": "peer_inject"}

    # the two arms' conversations differ by exactly the injected message, nothing else
    for tid, own_call in ((0, "6*7"), (1, "6*8")):
        mine = [r["messages"] for r in client.requests_seen
                if any(own_call in (m.get("content") or "") for m in r["messages"] if m["role"] == "assistant")]
        with_arm = [m for m in mine if comment_of(m) is not None]
        without_arm = [m for m in mine if comment_of(m) is None]
        assert len(with_arm) == len(without_arm) == 4
        assert all(m == with_arm[0] for m in with_arm) and all(m == without_arm[0] for m in without_arm)
        injected = {"role": "user", "content": next(r.text for r in injections if r.trajectory_id == tid)}
        assert with_arm[0][-1] == injected and with_arm[0].count(injected) == 1
        assert [m for m in with_arm[0] if m != injected] == without_arm[0]

    effects = peer_effects([run_id], tmp_path)
    assert (effects.labelled, effects.helped, effects.hurt, effects.neutral) == (2, 1, 1, 0)
    assert effects.mean_effect == 0.0 and effects.mean_with == 0.5 and effects.mean_without == 0.5
    assert dict(effects.histogram) == {**{c / 4: 0 for c in range(-4, 5)}, -0.5: 1, 0.5: 1}
    # an effect exactly at the threshold is no effect
    strict = peer_effects([run_id], tmp_path, threshold=0.5)
    assert (strict.helped, strict.hurt, strict.neutral) == (0, 0, 2)
    text = "\n".join(effects_text(effects))
    assert "helped 1 (50%), hurt 1 (50%), no effect 0 (0%)" in text and "  +0.50 | " in text

    # peerstep view: the effect is a badge on the injection it measures, and no label is drawn as a step
    with StepLog.open(run_id, tmp_path) as log:
        model = build_model(log.meta(), log.rows())
    by_id = {s["id"]: s for s in model["steps"]}
    assert not [s for s in model["steps"] if s["kind"] == "label"]
    for tid, (_, _, effect) in EXPECTED.items():
        inject = next(r for r in injections if r.trajectory_id == tid)
        badges = by_id[inject.step_id]["badges"]
        assert [(b["text"], b["tone"]) for b in badges] == [(f"effect {effect:+.2f}", "good" if effect > 0 else "bad")]
        assert "without it: " in badges[0]["title"]


async def test_a_second_pass_labels_no_injection_twice(tmp_path: Path) -> None:
    run_id = await leap_run(tmp_path)
    client = Continuations()
    first = await alabel_peers([run_id], client, k=2, runs_dir=tmp_path)
    assert client.peak == 4  # one injection at a time, its 2 + 2 rollouts at the server together
    again = await alabel_peers([run_id], Continuations(), k=2, runs_dir=tmp_path)
    assert first.labelled == 2 and again.labelled == 0 and again.rollouts == 0 and again.already == 2
    assert len(records(run_id, tmp_path, StepKind.LABEL)) == 2
    forks = list(tmp_path.glob("*.sqlite"))
    assert len(forks) == 1 + 4  # the run and two forks per injection: the second pass forked nothing


async def test_runs_without_injections_or_gold_are_skipped_with_why(tmp_path: Path) -> None:
    single = (await arun(QUESTION, ScriptedClient([calc("6*7"), submit("42")]), gold="42", python=False,
                         runs_dir=tmp_path)).run_id
    no_gold = await leap_run(tmp_path, gold=None)
    summary = await alabel_peers([single, no_gold], Continuations(), k=2, runs_dir=tmp_path)
    assert summary.labelled == 0 and summary.runs == 0 and summary.rollouts == 0
    assert "no peer injections (strategy single)" in summary.skipped[single]
    assert "no gold answer" in summary.skipped[no_gold]
    assert records(single, tmp_path, StepKind.LABEL) == [] and records(no_gold, tmp_path, StepKind.LABEL) == []
    effects = peer_effects([single, no_gold], tmp_path)
    assert effects.labelled == 0 and set(effects.skipped) == {single, no_gold}
    assert "run `peerstep label --peers` first" in effects_text(effects)[0]


async def test_a_step_that_is_not_an_injection_cannot_be_forked_without_a_comment(tmp_path: Path) -> None:
    run_id = await leap_run(tmp_path)
    reason = next(r for r in records(run_id, tmp_path, StepKind.REASON) if r.trajectory_id == 0)
    with pytest.raises(InputError, match="not a peer injection"):
        await afork(run_id, reason.step_id, Continuations(), k=1, runs_dir=tmp_path, without_injection=True)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})


def test_the_cli_labels_injections_through_a_server_then_summarises_without_one(tmp_path: Path) -> None:
    run_id = asyncio.run(leap_run(tmp_path))
    before = cli("label", run_id, "--summary", "--dir", str(tmp_path))
    assert before.exit_code == 0, before.output
    assert "no labelled peer injections (2 unlabelled" in before.output
    with ContinuationServer(lambda position, seed: submit("42" if seed < 2 else "41")) as server:
        out = cli("label", run_id, "--peers", "-k", "4", "--base-url", server.base_url, "--model", "scripted",
                  "--dir", str(tmp_path))
        assert out.exit_code == 0, out.output
        assert server.requests == 16  # 2 injections x (4 with the comment + 4 without)
    assert "labelled 2 peer injections of 2 trajectories in 1 runs" in out.output
    # the server ignores the comment: every injection has no effect
    assert "helped 0 (0%), hurt 0 (0%), no effect 2 (100%) (|effect| <= 0.25)" in out.output
    assert "  +0.00 | " + "#" * 40 + " 2" in out.output
    as_json = cli("label", run_id, "--summary", "--json", "--dir", str(tmp_path))
    assert json.loads(as_json.stdout)["neutral"] == 2
    bad = cli("label", run_id, "--summary", "--threshold", "1.5", "--dir", str(tmp_path))
    assert bad.exit_code == 2 and "--threshold must be in [0, 1)" in bad.output and "Traceback" not in bad.output
    binary = cli("label", run_id, "--peers", "--search", "binary", "--dir", str(tmp_path))
    assert binary.exit_code == 2 and "--peers labels every injection" in binary.output
