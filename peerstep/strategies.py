"""Named strategies: how many trajectories, whether they share, how they are scored and combined.

=============  ================================================================================
single         one trajectory at temperature 0
majority       N independent trajectories, majority vote over equivalent answers
adaptive       independent trajectories two at a time until two agree and lead (at most N), majority vote
best-of-n      N independent trajectories, an LLM judge scores each answer, the best one wins
listwise       N independent trajectories; when their answers disagree, a list-wise judge reads the distinct
               solutions side by side and picks one (majority vote when it cannot)
leap           N trajectories in rounds with LeaP peer sharing at barriers, majority vote
leap+verify    leap, plus verifiers (peer agreement, LLM judge) at barriers and at the end,
               votes weighted by score
=============  ================================================================================

Strategies are found by name in ``peerstep.registry.STRATEGIES``. Every strategy runs on the same
parallel graph (``peerstep.run``), so their step logs and results compare directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from peerstep._errors import InputError
from peerstep.agent import AgentConfig, ModelClient, SamplingParams
from peerstep.grading import DEFAULT_CHECKER, Checker
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.registry import STRATEGIES, VERIFIERS
from peerstep.verify import LLMJudge, PeerAgreement, Verifier
from peerstep.verify._transformers_prm import PRM_META


@dataclass(frozen=True)
class Strategy:
    """A named way to run a task: the parallel graph's settings for ``n`` trajectories, and its verifiers.

    Register your own with ``peerstep.registry.STRATEGIES.register(name, Strategy(...))``.
    """

    name: str
    config: Callable[[int, AgentConfig], ParallelConfig]
    # (client, the task's checker) -> verifiers: an answer verifier grades with the task's own rule
    verifiers: Callable[[ModelClient, Checker], list[Verifier]] = field(default=lambda client, checker: [])
    # trajectories when the caller names no n: the count this strategy measured best with
    default_n: int = 4


def _whole(agent: AgentConfig) -> int:
    return agent.budget.max_steps + 3  # a round long enough that a trajectory finishes within it


SINGLE = Strategy("single", lambda n, a: ParallelConfig(n=1, max_rounds=1, round_steps=_whole(a),
                                                        round_tokens=10**9))
MAJORITY = Strategy("majority", lambda n, a: ParallelConfig(n=n, max_rounds=1, round_steps=_whole(a),
                                                            round_tokens=10**9))
# Adaptive consistency (Aggarwal et al., 2023): sample in waves of two and stop once the vote is settled (two
# answers agree and lead every other answer), at most n. Easy tasks cost two trajectories instead of n; the samples
# saved go to the tasks whose answers disagree. Each wave is one round long enough to finish (a trajectory of the
# program-first loop finishes in one or two calls), so a wave starts only when the one before has answered.
# At most 8 by default: on 120 held-out tasks (1.5B) adaptive@8 solved 102 to majority@4's 98 (5 won, 1 lost) at 83%
# of its tokens; at most 4 it matched majority@4 at 72% of its tokens (README, "Adaptive sampling").
ADAPTIVE = Strategy("adaptive", lambda n, a: ParallelConfig(
    n=n, wave=min(2, n), max_rounds=-(-n // 2), round_steps=_whole(a), round_tokens=10**9, early_stop=2,
    early_stop_lead=1), default_n=8)
BEST_OF_N = Strategy("best-of-n", lambda n, a: ParallelConfig(n=n, max_rounds=1, round_steps=_whole(a),
                                                              round_tokens=10**9, aggregate="best-of-n"),
                     lambda client, checker: [LLMJudge(client)])
# The same samples as majority; only the aggregation differs, so the two compare at equal generated tokens (the
# judge's verdict is one token, asked only when answers disagree).
LISTWISE = Strategy("listwise", lambda n, a: ParallelConfig(n=n, max_rounds=1, round_steps=_whole(a),
                                                            round_tokens=10**9, aggregate="listwise"))
# LeaP shares every T generated tokens (reference: 2048, with 256-token summaries, i.e. ~12% overhead per
# round). Tool-using trajectories here finish in a few hundred tokens, so a round is 3 model calls or 1024
# tokens: sharing reaches the trajectories that are still working, and costs little on easy problems.
# Each reader hears its two most similar peers ("clustered"), not LeaP's least similar ("dispersed"): on the 1.5B at
# round length 1, clustered solved 7 of 10 dev tasks to dispersed's 4 (4 won / 1 lost) and tied it on 10 held-out
# ones (5 / 5, 0 / 0), the rule declared before either ran (bench/results/PREREGISTERED.md, stop 30, item 2); it
# costs about a quarter more tokens. A small model adopts a dissenting peer's number more often than it is corrected
# by one (README, "LeaP's knobs"), so a changed answer counts only if the trajectory re-computed it
# (switch_needs_rerun, declared in stop 31): replayed on the same runs it took dispersed from 4 to 7 of 10 dev tasks
# (3 won / 0 lost) and, on 14 held-out tasks, dispersed from 8 to 9 (1 / 0) and clustered from 8 to 10 (2 / 0).
LEAP_SHARING = SharingConfig(router="clustered", switch_needs_rerun=True)
LEAP = Strategy("leap", lambda n, a: ParallelConfig(n=n, max_rounds=4, round_steps=3, round_tokens=1024,
                                                    sharing=LEAP_SHARING))
LEAP_VERIFY = Strategy("leap+verify", lambda n, a: ParallelConfig(n=n, max_rounds=4, round_steps=3, round_tokens=1024,
                                                                  sharing=LEAP_SHARING, barrier_verify=True,
                                                                  aggregate="weighted"),
                       lambda client, checker: [PeerAgreement(checker), LLMJudge(client)])


def get_strategy(name: str) -> Strategy:
    strategy: Strategy = STRATEGIES.get(name)
    return strategy


def strategy_width(name: str, n: int | None = None) -> int:
    """How many trajectories ``name`` runs when ``n`` are asked for: one for ``single`` (and for a name that is no
    registered strategy, such as the bare-model baselines), the strategy's ``default_n`` when ``n`` is None."""
    if name == "single" or name not in STRATEGIES:
        return 1
    return get_strategy(name).default_n if n is None else n


def strategy_config(name: str, n: int, agent: AgentConfig) -> ParallelConfig:
    """The parallel-graph settings of a named strategy for ``n`` trajectories."""
    return get_strategy(name).config(n, agent)


def strategy_verifiers(name: str, client: ModelClient, checker: Checker = DEFAULT_CHECKER) -> list[Verifier]:
    return get_strategy(name).verifiers(client, checker)


VerifierFactory = Callable[[ModelClient, Checker], list[Verifier]]
"""(the run's client, the task's checker) -> the verifiers that score its trajectories."""


class NamedVerifiers:
    """A verifier factory that remembers the ``--verifier`` specs it was made from: the run records them, so
    ``peerstep resume`` scores with the same verifiers."""

    def __init__(self, specs: list[str], makers: list[Callable[[ModelClient, Checker], Verifier]]) -> None:
        self.specs = specs
        self.makers = makers

    def __call__(self, client: ModelClient, checker: Checker) -> list[Verifier]:
        return [make(client, checker) for make in self.makers]

    def __reduce__(self) -> tuple[Any, tuple[list[str]]]:
        """Shipped to another process (a Ray worker) as its specs, and rebuilt there: the makers are closures."""
        return verifier_factory, (self.specs,)


def verifier_factory(specs: list[str]) -> VerifierFactory:
    """The verifiers named on the command line (``--verifier NAME[:ARG]``, from ``peerstep.registry.VERIFIERS``),
    in place of a strategy's own; checked now, before any engine starts.

    ``answer-checker`` and ``peer-agreement`` grade with the task's checker, ``llm-judge`` asks the run's own
    model; ``prm:DIR`` is a PRM checkpoint scored in-process (``TransformersPRM``, loaded once for every run of
    the process), ``prm:URL[#MODEL]`` one served by vLLM's pooling API (``PRMClient``; when MODEL is a checkpoint
    directory of ``peerstep prm train``, served under that name, it is sent the token ids TRL trained on); a
    verifier registered by you is called with ARG when one is given, else with nothing.
    """
    makers: list[Callable[[ModelClient, Checker], Verifier]] = []
    for spec in specs:
        name, _, arg = spec.strip().partition(":")
        if name == "prm" and arg and not arg.startswith(("http://", "https://")):
            name = "transformers-prm"
        makers.append(_maker(name, arg, VERIFIERS.get(name)))
    return NamedVerifiers(list(specs), makers)


def _maker(name: str, arg: str, factory: Any) -> Callable[[ModelClient, Checker], Verifier]:
    """How to make verifier ``name`` for one run: per task for those that take its checker or client, else
    once now (a PRM's weights load once for the process)."""
    if name in ("answer-checker", "peer-agreement"):
        return lambda client, checker: cast(Verifier, factory(checker))
    if name == "llm-judge":
        return lambda client, checker: cast(Verifier, factory(client))
    if name in ("prm", "transformers-prm") and not arg:
        raise InputError("--verifier prm needs a checkpoint directory or a server URL: prm:DIR or "
                         "prm:http://HOST:PORT/v1#MODEL")
    if name == "prm":  # a served PRM; a MODEL that is a local checkpoint of ours is sent token ids (see PRMClient)
        url, _, model = arg.partition("#")
        ours = bool(model) and (Path(model).expanduser() / PRM_META).is_file()
        made = factory(url, model or "prm", checkpoint=Path(model).expanduser() if ours else None)
    else:
        made = factory(arg) if arg else factory()
    if not isinstance(made, Verifier):
        raise InputError(f"verifier {name!r} made a {type(made).__name__}, not a Verifier")
    return lambda client, checker: made


def trajectory_sampling(base: SamplingParams, tid: int, n: int, greedy_first: bool = False) -> SamplingParams:
    """Several trajectories need different samples: LeaP's temperature/top_p and a seed per trajectory. With
    ``greedy_first`` trajectory 0 keeps the run's own sampling (greedy at temperature 0): the one answer a small
    model gives best stays among the votes."""
    if n == 1 or (greedy_first and tid == 0):
        return base
    temperature = base.temperature if base.temperature > 0 else 0.6
    seed = (base.seed or 0) + tid
    return base.model_copy(update={"temperature": temperature, "top_p": min(base.top_p, 0.95), "seed": seed})
