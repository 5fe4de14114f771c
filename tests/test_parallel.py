"""Parallel trajectories: routing, injection, pruning, early stop, failure isolation (scripted model)."""

from __future__ import annotations

import random
from pathlib import Path

from peerstep import arun
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import NO_PEERS, ROUTERS, SharingConfig, comment_block, similarity
from peerstep.steplog import StepKind, StepLog
from tests.scripted import FixedScores, PerTrajectoryClient, scripted_vote


def calc(expr: str) -> str:
    return f'{{"name": "calculate", "arguments": {{"expression": "{expr}"}}}}'


def submit(answer: str) -> str:
    return f'{{"name": "submit_answer", "arguments": {{"answer": "{answer}"}}}}'


SUMMARIES = {0: "the product is 42", 1: "the product is 48 because six times eight", 2: "the product is 42 so far"}


def test_routers_pick_by_similarity() -> None:
    rng = random.Random(0)
    ranked = sorted((similarity(SUMMARIES[0], SUMMARIES[t]), t) for t in (1, 2))
    least, most = ranked[0][1], ranked[-1][1]
    assert least == 1 and most == 2
    assert [p for p, _ in ROUTERS.get("dispersed")(0, SUMMARIES, 1, rng)] == [1]
    assert [p for p, _ in ROUTERS.get("clustered")(0, SUMMARIES, 1, rng)] == [2]
    assert [p for p, _ in ROUTERS.get("hybrid")(0, SUMMARIES, 2, rng)] == [1, 2]
    assert [p for p, _ in ROUTERS.get("all")(0, SUMMARIES, 1, rng)] == [1, 2]
    picked = ROUTERS.get("random")(0, SUMMARIES, 1, random.Random(3))
    assert len(picked) == 1 and picked[0][0] in (1, 2)
    sims = dict(ROUTERS.get("all")(0, SUMMARIES, 2, rng))
    assert 0 < sims[1] < sims[2] < 1


def test_comment_block_text() -> None:
    block = comment_block(["a is 1", "a is 2"])
    assert block.startswith('<comment> Peer 1: "a is 1" Peer 2: "a is 2" </comment>')
    assert "differs from yours" in block
    assert comment_block([]) == NO_PEERS


def test_comment_block_with_evidence_asks_for_a_re_run() -> None:
    block = comment_block(["a is 1", "a is 2"], ["Its last computation: calculate(1) = 1", None])
    assert block.startswith('<comment> Peer 1: "a is 1"\nIts last computation: calculate(1) = 1\n Peer 2: "a is 2" '
                            '</comment>')
    assert "re-run the computation it shows" in block and "differs from yours. If one does" not in block


async def test_leap_with_evidence_shows_each_peers_last_computation(tmp_path: Path) -> None:
    # trajectory 1 computed 6*8 in its first round; trajectory 0 is told that, with the expression and its result,
    # as the step log holds them (not as its summary words them); trajectory 2 ran no tool: its summary alone
    client = PerTrajectoryClient(
        {0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("48")], 2: ["thinking", submit("42")]},
        summaries={0: "it is 42", 1: "it is 48, I computed 6*9", 2: "maybe 42"})
    config = ParallelConfig(n=3, max_rounds=3, round_steps=1,
                            sharing=SharingConfig(router="all", top_k=2, evidence=True))
    log = StepLog.create(directory=tmp_path)
    await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="leap", parallel=config,
               log=log)
    with StepLog(log.path, log.run_id) as reader:
        first = {r.trajectory_id: r.text or "" for r in reader.records(kind=StepKind.PEER_INJECT)
                 if r.data["round"] == 1}
    assert 'Peer 1: "it is 48, I computed 6*9"\nIts last computation: calculate(6*8) = 48' in first[0]
    assert 'Peer 2: "maybe 42" </comment>' in first[0]  # no tool run: no evidence line
    assert "calculate(6*7) = 42" in first[1] and "re-run the computation" in first[1]
    plain = PerTrajectoryClient(
        {0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("48")], 2: ["thinking", submit("42")]})
    log = StepLog.create(directory=tmp_path)
    await arun(lambda: QuestionEnvironment("What is 6*7?"), plain, strategy="leap",
               parallel=config.model_copy(update={"sharing": SharingConfig(router="all")}), log=log)
    with StepLog(log.path, log.run_id) as reader:
        assert not any("Its last computation" in (r.text or "") for r in reader.records(kind=StepKind.PEER_INJECT))


async def test_leap_round_shares_and_votes(tmp_path: Path) -> None:
    client = PerTrajectoryClient(
        {0: [calc("6*7"), "still thinking", submit("42")],
         1: [calc("6*8"), "hmm", submit("48")],
         2: [submit("42")]},
        summaries=SUMMARIES)
    log = StepLog.create(directory=tmp_path)
    config = ParallelConfig(n=3, max_rounds=4, round_steps=2, sharing=SharingConfig())
    result = await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="leap",
                                parallel=config, log=log)
    assert result.answer == "42"
    assert result.answers == {0: "42", 1: "48", 2: "42"}
    assert result.decision.groups == [("42", [0, 2], 2.0), ("48", [1], 1.0)]
    with StepLog(log.path, log.run_id) as reader:
        injections = list(reader.records(kind=StepKind.PEER_INJECT))
        summaries = list(reader.records(kind=StepKind.SUMMARY))
        aggregate = next(iter(reader.records(kind=StepKind.AGGREGATE)))
    # after round 1, trajectories 0 and 1 were active and trajectory 2 had finished: all three are summarised
    # (2 once, as it finished), only the active two hear their peers, least similar first (dispersed)
    assert sorted(r.trajectory_id for r in summaries) == [0, 1, 2]
    by_tid = {r.trajectory_id: r for r in injections}
    assert set(by_tid) == {0, 1}
    def least_similar_first(me: int) -> list[int]:
        return sorted((p for p in SUMMARIES if p != me), key=lambda p: similarity(SUMMARIES[me], SUMMARIES[p]))

    assert by_tid[0].data["sources"] == least_similar_first(0) == [1, 2]
    assert by_tid[1].data["sources"] == least_similar_first(1)
    assert by_tid[0].data["router"] == "dispersed"
    assert by_tid[0].data["similarities"] == [round(similarity(SUMMARIES[0], SUMMARIES[p]), 4) for p in (1, 2)]
    assert f'Peer 1: "{SUMMARIES[1]}"' in (by_tid[0].text or "")
    assert aggregate.trajectory_id == -1 and aggregate.data["correct"] is True
    # the injected block reached the model in the next request of trajectory 0
    sent = [r for r in client.requests_seen if r["sampling"].seed == 0]
    assert any(m["content"].startswith("<comment>") for m in sent[-1]["messages"] if m["role"] == "user")


async def test_continue_mode_extends_a_partial_assistant_message(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("1+1"), submit("2")], 1: [calc("1+1"), submit("2")]})
    config = ParallelConfig(n=2, max_rounds=3, round_steps=1, sharing=SharingConfig(mode="continue"))
    await arun(lambda: QuestionEnvironment("1+1?"), client, strategy="leap", parallel=config,
                       log=StepLog.create(directory=tmp_path))
    summary_requests = [r for r in client.requests_seen
                        if r["messages"][-1]["role"] == "assistant"]
    assert summary_requests
    req = summary_requests[0]
    assert req["messages"][-1]["content"].startswith("<summarize> In short")
    assert req["sampling"].extra_body == {"continue_final_message": True, "add_generation_prompt": False}
    assert req["sampling"].stop == ["</summarize>"] and req["sampling"].max_tokens == 256




async def test_pruning_keeps_the_best(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("1"), submit("1")], 1: [calc("2"), submit("2")],
                                  2: [calc("3"), submit("3")]})
    config = ParallelConfig(n=3, max_rounds=3, round_steps=1, prune_keep=1, aggregate="weighted")
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="leap+verify", parallel=config,
                                verifiers=[FixedScores({0: 0.1, 1: 0.9, 2: 0.5})], log=log)
    assert result.answer == "2"
    assert result.errors == {0: "pruned", 2: "pruned"}
    with StepLog(log.path, log.run_id) as reader:
        pruned = sorted(r.trajectory_id for r in reader.records(kind=StepKind.PRUNE))
        verify = list(reader.records(kind=StepKind.VERIFY))
    assert pruned == [0, 2]
    assert {(r.trajectory_id, r.data["score"]) for r in verify if r.data["partial"]} == {(0, 0.1), (1, 0.9),
                                                                                          (2, 0.5)}


async def test_early_stop_when_enough_agree(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [submit("7")], 1: [submit("7.0")], 2: [calc("1"), calc("2"), calc("3")]})
    config = ParallelConfig(n=3, max_rounds=5, round_steps=1, early_stop=2)
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="majority", parallel=config,
                                log=StepLog.create(directory=tmp_path))
    assert result.stop_reason.startswith("early stop") and result.answer == "7"
    assert result.rounds == 1
    assert result.answers[2] is None  # the straggler was not forced to answer
    assert client.scripts[2] == [calc("2"), calc("3")]


async def test_tool_backed_vote_counts_an_answer_no_tool_stated_half(tmp_path: Path) -> None:
    # three trajectories state 40 with no tool; two compute 6*7 and submit 42: the plain vote says 40, the
    # tool-backed vote 42 (2 x 1 against 3 x 0.5), and the aggregate record says which answers were backed
    scripts = {tid: [submit("40")] for tid in range(3)} | {tid: [calc("6*7"), submit("42")] for tid in (3, 4)}
    config = ParallelConfig(n=5, max_rounds=1, round_steps=5, aggregate="tool-backed")
    result, aggregate = await scripted_vote(scripts, config, tmp_path)
    assert result.answer == "42" and result.correct is True and result.decision.method == "tool-backed"
    assert aggregate.data["backed"] == {"0": False, "1": False, "2": False, "3": True, "4": True}
    plain = await arun(lambda: QuestionEnvironment("6*7?", gold="42"), PerTrajectoryClient(
        {tid: [submit("40")] for tid in range(3)} | {tid: [calc("6*7"), submit("42")] for tid in (3, 4)}),
        strategy="majority", n=5, log=StepLog.create(directory=tmp_path))
    assert plain.answer == "40"


async def test_greedy_first_keeps_trajectory_0_at_the_runs_temperature(tmp_path: Path) -> None:
    client = PerTrajectoryClient({tid: [submit("7")] for tid in range(3)})
    config = ParallelConfig(n=3, max_rounds=1, round_steps=3, greedy_first=True)
    await arun(lambda: QuestionEnvironment("q?"), client, strategy="majority", parallel=config,
               log=StepLog.create(directory=tmp_path))
    temperatures = {r["sampling"].seed: r["sampling"].temperature for r in client.requests_seen}
    assert temperatures == {0: 0.0, 1: 0.6, 2: 0.6}
    sampled = PerTrajectoryClient({tid: [submit("7")] for tid in range(3)})
    await arun(lambda: QuestionEnvironment("q?"), sampled, strategy="majority", n=3,
               log=StepLog.create(directory=tmp_path))
    assert {r["sampling"].temperature for r in sampled.requests_seen} == {0.6}


async def test_adaptive_stops_after_one_wave_when_two_agree(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [submit("7")], 1: [submit("7.0")], 2: [submit("8")], 3: [submit("8")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="adaptive", n=4, log=log)
    assert result.answer == "7" and result.stop_reason.startswith("early stop")
    assert list(result.answers) == [0, 1]  # the second wave never started
    assert client.scripts[2] == [submit("8")] and client.scripts[3] == [submit("8")]
    with StepLog(log.path, log.run_id) as reader:
        started = {r.trajectory_id for r in reader.records(kind=StepKind.RUN_START)}
    assert started == {0, 1}


async def test_adaptive_samples_a_wave_more_until_one_answer_leads(tmp_path: Path) -> None:
    # wave 1 disagrees (7 / 8); wave 2 gives 8 and 9: 8 leads 2-1, so the run stops before wave 3
    client = PerTrajectoryClient({0: [submit("7")], 1: [submit("8")], 2: [submit("8")], 3: [submit("9")],
                                  4: [submit("7")], 5: [submit("7")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="adaptive", n=6, log=log)
    assert result.answer == "8" and result.stop_reason.startswith("early stop: 2 trajectories agree on '8'")
    assert result.answers == {0: "7", 1: "8", 2: "8", 3: "9"}
    with StepLog(log.path, log.run_id) as reader:
        barriers = [r.data for r in reader.records(kind=StepKind.BARRIER)]
    assert [b.get("started") for b in barriers] == [[2, 3], None]


async def test_adaptive_tie_is_not_agreement_and_the_cap_ends_it(tmp_path: Path) -> None:
    # 7, 8 | 8, 7: a 2-2 tie does not stop; n = 4 is the cap, so the vote decides (ties: the first answer seen)
    client = PerTrajectoryClient({0: [submit("7")], 1: [submit("8")], 2: [submit("8")], 3: [submit("7")]})
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="adaptive", n=4,
                        log=StepLog.create(directory=tmp_path))
    assert result.stop_reason == "all trajectories finished"
    assert result.answer == "7" and len(result.answers) == 4
    assert result.steps == 4


async def test_without_n_each_strategy_runs_its_own_default(tmp_path: Path) -> None:
    """adaptive defaults to at most 8 (measured best), the other parallel strategies to 4, single to 1."""
    from peerstep.strategies import strategy_width

    assert [strategy_width(s) for s in ("single", "majority", "leap", "adaptive", "bare-program")] == [1, 4, 4, 8, 1]
    assert strategy_width("adaptive", 4) == 4 and strategy_width("single", 8) == 1
    # four waves of two that never settle (7, 8 | 9, 10 | ...): with no n the cap is 8
    scripts = {tid: [submit(str(7 + tid))] for tid in range(8)}
    result = await arun(lambda: QuestionEnvironment("q?"), PerTrajectoryClient(scripts), strategy="adaptive",
                        log=StepLog.create(directory=tmp_path))
    assert result.n == 8 and len(result.answers) == 8 and result.stop_reason == "all trajectories finished"
    majority = await arun(lambda: QuestionEnvironment("q?"), PerTrajectoryClient(
        {tid: [submit("7")] for tid in range(4)}), strategy="majority", log=StepLog.create(directory=tmp_path))
    assert majority.n == 4 and len(majority.answers) == 4


async def test_a_crashing_trajectory_does_not_fail_its_siblings(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("6*7"), submit("42")], 1: [RuntimeError("GPU fell over")],
                                  2: [calc("6*7"), submit("42")]})
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment("6*7?"), client, strategy="majority", n=3, log=log)
    assert result.answer == "42"
    assert "GPU fell over" in result.errors[1]
    assert result.answers == {0: "42", 1: None, 2: "42"}
    with StepLog(log.path, log.run_id) as reader:
        errors = [r for r in reader.records(kind=StepKind.ERROR) if r.trajectory_id == 1]
    assert errors and "RuntimeError" in (errors[0].text or "")


async def test_unfinished_trajectories_are_forced_at_the_end(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("1"), calc("2"), submit("5")], 1: [calc("1"), calc("2"), submit("5")]})
    config = ParallelConfig(n=2, max_rounds=2, round_steps=1)
    log = StepLog.create(directory=tmp_path)
    result = await arun(lambda: QuestionEnvironment("q?"), client, strategy="majority", parallel=config, log=log)
    assert result.answer == "5" and result.stop_reason.startswith("max_rounds")
    forced = [r for r in client.requests_seen if r["tool_choice"]]
    assert len(forced) == 2
    assert all(r["tool_choice"] == {"type": "function", "function": {"name": "submit_answer"}} for r in forced)


async def test_single_strategy_is_one_greedy_trajectory(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("2**10"), submit("1024")]})
    result = await arun(lambda: QuestionEnvironment("2**10?", gold="1024"), client, strategy="single",
                                log=StepLog.create(directory=tmp_path))
    assert result.answer == "1024" and list(result.answers) == [0]
    assert all(r["sampling"].temperature == 0.0 for r in client.requests_seen)


async def test_a_lone_active_trajectory_hears_its_finished_peer_whose_summary_is_written_once(
        tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [submit("4")], 1: [calc("2+2"), calc("2*2"), submit("4")]},
                                 summaries={0: "I submitted 4", 1: "2+2 is 4 so far"})
    config = ParallelConfig(n=2, max_rounds=4, round_steps=1, sharing=SharingConfig())
    log = StepLog.create(directory=tmp_path)
    await arun(lambda: QuestionEnvironment("2+2?"), client, strategy="leap", parallel=config, log=log)
    with StepLog(log.path, log.run_id) as reader:
        summaries = list(reader.records(kind=StepKind.SUMMARY))
        injections = list(reader.records(kind=StepKind.PEER_INJECT))
    # two barriers with 1 active: the finished trajectory 0 is summarised at the first only, 1 at both
    assert sorted(r.trajectory_id for r in summaries) == [0, 1, 1]
    assert len(injections) == 2 and all(r.trajectory_id == 1 and r.data["sources"] == [0] for r in injections)
    assert all('Peer 1: "I submitted 4"' in (r.text or "") for r in injections)


async def test_a_trajectory_with_no_peer_at_all_writes_no_summary(tmp_path: Path) -> None:
    client = PerTrajectoryClient({0: [calc("2+2"), calc("2*2"), submit("4")]})
    config = ParallelConfig(n=1, max_rounds=4, round_steps=1, sharing=SharingConfig())
    log = StepLog.create(directory=tmp_path)
    await arun(lambda: QuestionEnvironment("2+2?"), client, strategy="leap", parallel=config, log=log)
    with StepLog(log.path, log.run_id) as reader:
        assert list(reader.records(kind=StepKind.SUMMARY)) == []
        injections = list(reader.records(kind=StepKind.PEER_INJECT))
    assert injections and all(r.text == NO_PEERS for r in injections)


async def test_a_router_can_be_a_function(tmp_path: Path) -> None:
    """Routers are pluggable without registering: a function (me, summaries, k, rng) -> [(peer, similarity)]."""
    chosen: list[int] = []

    def lowest_peer(me: int, summaries: dict[int, str], k: int, rng: random.Random) -> list[tuple[int, float]]:
        peer = min(p for p in summaries if p != me)
        chosen.append(me)
        return [(peer, 0.5)]

    client = PerTrajectoryClient({t: ['{"name": "calculate", "arguments": {"expression": "1+1"}}',
                                      '{"name": "submit_answer", "arguments": {"answer": "2"}}'] for t in range(3)})
    config = ParallelConfig(n=3, max_rounds=2, round_steps=1, sharing=SharingConfig(router=lowest_peer))
    log = StepLog.create(directory=tmp_path)
    await arun(lambda: QuestionEnvironment("1+1?"), client, strategy="leap", parallel=config, log=log)
    with StepLog(log.path, log.run_id) as reader:
        injects = list(reader.records(kind=StepKind.PEER_INJECT))
    assert sorted(chosen) == [0, 1, 2]
    assert [r.data["sources"] for r in injects] == [[1], [0], [0]]
    assert all(r.data["router"].endswith("lowest_peer") for r in injects)


async def test_tokens_stream_from_every_trajectory_of_a_parallel_run(tmp_path: Path) -> None:
    """``on_token`` is not a ``single``-only feature: each trajectory's reply streams under its own id, and what
    streams for a trajectory adds up to the replies it logged."""
    from peerstep import QuestionEnvironment, StepKind, StepLog, arun
    from peerstep.testing.model import PerTrajectoryClient

    streamed: dict[int, str] = {}
    client = PerTrajectoryClient({0: ["The answer is 42."], 1: ["I think the answer is 41."]})
    result = await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="majority", n=2,
                        python=False, runs_dir=tmp_path,
                        on_token=lambda tid, text: streamed.__setitem__(tid, streamed.get(tid, "") + text))
    assert result.n == 2 and result.answer in ("42", "41")
    assert streamed == {0: "The answer is 42.", 1: "I think the answer is 41."}
    with StepLog.open(result.run_id, tmp_path) as log:
        reasons = {r.trajectory_id: r.text for r in log.records() if r.kind == StepKind.REASON}
    assert reasons == streamed
