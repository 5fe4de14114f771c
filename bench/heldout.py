"""Held-out evaluation: does the framework beat the bare model, and by how much per token?

    .venv/bin/python bench/heldout.py run --split heldout --base-url URL --model NAME --limit 12 \\
        --strategies bare-cot,bare-program,single,majority,leap
    .venv/bin/python bench/heldout.py report bench/results/heldout-*.jsonl [old-run.json=before]
    .venv/bin/python bench/heldout.py export --split heldout --out /tmp/heldout.jsonl   # a task file, e.g. for
                                                                                        # an older peerstep

Two sets, each generated from a seed: ``word-problems`` (computation-heavy multi-step word problems,
peerstep's own generator) and ``gsm-symbolic`` (reasoning-gym's GSM-Symbolic variants). The ``dev``
split's seeds are the ones used while developing; the ``heldout`` split's seeds were chosen once and
their problems never read (this script prints only aggregate figures and task ids). Every strategy
and both bare-model baselines run through the same eval runner on the same tasks, graded by each
task's own checker, so every comparison is paired.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from peerstep.evals import EpisodeOutcome, EvalReport, PooledReport
from peerstep.grading import Checker

SPLITS = {
    "dev": {"word-problems": 0, "gsm-symbolic": 0},
    "heldout": {"word-problems": 90211, "gsm-symbolic": 90212},
}
BASELINES = ("bare-cot", "bare-program")
PREFIXES = {"words": "word-problems", "math": "gsm-symbolic"}  # a task id's first part -> its set


# LeaP's knobs measured here (issue 13), each ``leap`` with one SharingConfig field changed: the router (which
# peers' summaries each trajectory reads: LeaP's dispersed is the default), how many (top-k 2 of 3 peers is the
# default), and the summary length (256 tokens is LeaP's and the default).
LEAP_VARIANTS: dict[str, dict[str, object]] = {
    "leap+evidence": {"evidence": True},
    "leap-dispersed": {"router": "dispersed"},  # LeaP's own router, leap's default until stop 31
    "leap-clustered": {"router": "clustered"},
    "leap-hybrid": {"router": "hybrid"},
    "leap-all": {"router": "all", "top_k": 3},
    "leap-summary64": {"summary_tokens": 64},
    "leap-rerun": {"switch_needs_rerun": True},
}


def register_variants() -> None:
    """Strategies measured here before any is offered under its own name: ``leap+evidence`` is ``leap`` whose
    comments carry each peer's last computation and ask for a re-run (``SharingConfig.evidence``); the others are
    ``leap`` with one of LeaP's knobs changed from leap's defaults (``LEAP_VARIANTS``). Rows logged before stop 31
    ran them against the defaults of their day: router ``dispersed``, so ``leap`` then is ``leap-dispersed`` now."""
    from peerstep.agent import AgentConfig
    from peerstep.graphs import ParallelConfig
    from peerstep.peers import SharingConfig
    from peerstep.registry import STRATEGIES
    from peerstep.strategies import LEAP_SHARING, Strategy, strategy_config

    def with_sharing(sharing: SharingConfig) -> Callable[[int, AgentConfig], ParallelConfig]:
        return lambda n, a: strategy_config("leap", n, a).model_copy(update={"sharing": sharing})

    for name, fields in LEAP_VARIANTS.items():
        if name not in STRATEGIES:
            sharing = SharingConfig.model_validate({**LEAP_SHARING.model_dump(), **fields})
            STRATEGIES.register(name, Strategy(name, with_sharing(sharing)))


def run(args: argparse.Namespace) -> None:
    from peerstep.cli.evals import run_and_report
    from peerstep.environments import load_dataset
    from peerstep.evals import RoundShape

    register_variants()

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    sets = [s.strip() for s in args.sets.split(",")] if args.sets else list(SPLITS[args.split])
    for name in sets:
        if name not in SPLITS[args.split]:
            raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SPLITS[args.split])}")
        seed = SPLITS[args.split][name]
        # the sets are 40 tasks; a larger --limit extends one (task i depends on the seed and i alone, so the
        # first 40 stay the same tasks)
        dataset = load_dataset(name, seed=seed, python=True, limit=max(args.limit or 0, 40))
        tag = "" if args.answer_policy == "accept" else f"-{args.answer_policy}"
        tag += {None: "", True: "-from-output", False: "-no-from-output"}[args.answer_from_output]
        tag += f"-{args.tag}" if args.tag else ""
        out = args.out_dir / f"{args.split}-{name}{tag}.json"
        run_and_report(dataset, strategies, args.n, args.limit, args.concurrency, seed, args.engine, args.model,
                       args.base_url, None, out, None, args.max_steps, args.answer_policy, resume=args.resume,
                       answer_from_output=args.answer_from_output,
                       rounds=RoundShape(args.round_steps, args.rounds) if args.round_steps or args.rounds else None)


def export(args: argparse.Namespace) -> None:
    """The split's tasks as a task file (question, gold, numeric checker, tools): for runs of other versions."""
    from peerstep.environments import load_dataset

    with args.out.open("w") as fh:
        for name, seed in SPLITS[args.split].items():
            dataset = load_dataset(name, seed=seed, limit=args.limit)
            for i in range(len(dataset)):
                info = dataset.info(i)
                atol = 0.005 if info.gold and "." in info.gold else 0.0
                fh.write(json.dumps({"id": info.task_id, "question": info.question, "gold": info.gold,
                                     "tools": ["calculator", "python"],
                                     "checker": {"type": "numeric", "rtol": 0.0 if atol else 1e-9, "atol": atol}})
                         + "\n")
    print(f"wrote {args.out}")


def task_checker(task_id: str) -> tuple[Callable[[str | None], bool], Checker]:
    """The task found by its id in the held-out/dev splits: its grade (answer -> correct) and its checker (what a
    run's vote groups answers with)."""
    from peerstep.environments import load_dataset

    kind, seed, index = task_id.rsplit("-", 2)
    dataset = load_dataset(PREFIXES[kind], seed=int(seed), limit=int(index) + 1)
    return (lambda answer: answer is not None and bool(dataset.grade(int(index), answer))), dataset.checker(int(index))


def grader(task_id: str) -> Callable[[str | None], bool]:
    """The task's own checker, found by its id in the held-out/dev splits: answer -> correct."""
    return task_checker(task_id)[0]


def _label(o: EpisodeOutcome) -> str:
    return o.strategy if o.n == 1 else f"{o.strategy}@{o.n}"


def _regrade(outcomes: list[EpisodeOutcome], label: str | None) -> list[EpisodeOutcome]:
    """Grade every answer again with its task's own checker (found by task id in the splits), so that runs of
    another version (e.g. a task file run by an older peerstep) are graded exactly like this one's."""
    from peerstep.environments import load_dataset

    out = []
    for o in outcomes:
        kind, seed, index = o.task_id.rsplit("-", 2)
        dataset = load_dataset(PREFIXES[kind], seed=int(seed), limit=int(index) + 1)
        info = dataset.info(int(index))
        assert info.task_id == o.task_id and info.gold == o.gold, f"{o.task_id} is not the task that was run"
        correct = o.answer is not None and dataset.grade(int(index), o.answer)
        renamed = label if label and o.strategy not in BASELINES else o.strategy  # baselines keep their names
        out.append(o.model_copy(update={"correct": correct, "strategy": renamed}))
    return out


def report(args: argparse.Namespace) -> None:
    outcomes: list[EpisodeOutcome] = []
    for path in args.reports:
        # "file.json=label" renames the file's strategies (not its baselines); a row found in several files is the
        # last file's
        name, _, label = str(path).partition("=")
        text = Path(name).read_text()
        if name.endswith(".jsonl"):  # the per-episode results, e.g. of a run still going or interrupted
            found = [EpisodeOutcome.model_validate_json(line) for line in text.splitlines() if line.strip()]
        else:
            found = EvalReport.model_validate_json(text).outcomes
        outcomes.extend(_regrade([o for o in found if args.limit is None or o.index < args.limit], label or None))
    # the pairing and the paired test are the library's (peerstep report uses the same); task ids carry their seed,
    # so one dataset key pairs them all
    pooled = PooledReport(sources=[], outcomes={("heldout", o.task_id, _label(o)): o for o in outcomes}, prices={})
    labels = list(dict.fromkeys(_label(o) for o in outcomes))
    bases = [b.strip() for b in args.against.split(",")] if args.against else list(BASELINES)
    print("| strategy | solved | model calls / task | tokens / task | model calls per solved | tokens per solved |"
          + "".join(f" vs {b}: won / lost (exact McNemar p) |" for b in bases))
    print("|---|---|---|---|---|---|" + "---|" * len(bases))
    for label in labels:
        mine = pooled.of(label)
        solved = sum(o.correct for o in mine)
        calls = sum(o.steps for o in mine)
        tokens = sum(o.tokens for o in mine)
        row = (f"| {label} | {solved}/{len(mine)} | {calls / max(len(mine), 1):.1f} | {tokens / max(len(mine), 1):,.0f}"
               f" | {calls / solved if solved else float('nan'):.1f} | "
               f"{tokens / solved if solved else float('nan'):,.0f} |")
        for base in bases:
            c = pooled.compare(label, base)
            row += f" {c.wins} / {c.losses} (p {c.p_value:.2g}) |" if c.tasks and label != base else " — |"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--split", choices=list(SPLITS), default="dev")
    p_run.add_argument("--sets", default=None, help="comma-separated sets of the split (default: all)")
    p_run.add_argument("--engine", default="llamacpp")
    p_run.add_argument("--base-url", default=None)
    p_run.add_argument("--model", default=None)
    p_run.add_argument("--limit", type=int, default=12)
    p_run.add_argument("--strategies", default="bare-cot,bare-program,single")
    p_run.add_argument("-n", type=int, default=4)
    p_run.add_argument("--concurrency", type=int, default=2)
    p_run.add_argument("--max-steps", type=int, default=8)
    p_run.add_argument("--out-dir", type=Path, default=Path("bench/results"))
    p_run.add_argument("--answer-policy", default="accept", choices=["accept", "confirm", "check"])
    p_run.add_argument("--answer-from-output", default=None, action=argparse.BooleanOptionalAction,
                       help="submit a program's printed number without a restating call (default: the library's)")
    p_run.add_argument("--round-steps", type=int, default=None,
                       help="model calls per round of leap (and its variants); the one-round strategies keep theirs")
    p_run.add_argument("--rounds", type=int, default=None, help="rounds of leap before an answer is forced")
    p_run.add_argument("--tag", default=None,
                       help="added to the result files' names, e.g. the model (0.5b) so runs of another model "
                            "do not overwrite these")
    p_run.add_argument("--resume", action="store_true",
                       help="keep the episodes an interrupted run finished (OUT.jsonl) and run the rest")
    p_exp = sub.add_parser("export")
    p_exp.add_argument("--split", choices=list(SPLITS), default="dev")
    p_exp.add_argument("--limit", type=int, default=12)
    p_exp.add_argument("--out", type=Path, required=True)
    p_rep = sub.add_parser("report")
    p_rep.add_argument("reports", nargs="+", help="report JSON files (or their per-episode .jsonl); FILE=LABEL renames "
                                                  "its strategies (baselines keep their names)")
    p_rep.add_argument("--against", default=None, help="comma-separated rows to pair every row with, as labelled in "
                                                       "the table (e.g. majority@4,leap@4; default: the baselines)")
    p_rep.add_argument("--limit", type=int, default=None, help="only the first LIMIT tasks of each set")
    args = parser.parse_args()
    {"run": run, "export": export, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
