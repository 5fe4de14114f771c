"""The list-wise judge against the majority vote, on the same trajectories (issue 13).

    .venv/bin/python bench/listwise.py bench/results/heldout-*-adaptive.jsonl --strategy majority \\
        --base-url http://127.0.0.1:8901/v1 --model qwen2.5-coder-1.5b-instruct --json bench/results/listwise.json

``listwise`` samples exactly what ``majority`` samples and differs only in how the answers become one, so the fair
comparison holds the trajectories fixed: this script reads the step logs of earlier ``majority`` runs (the result
files of ``bench/heldout.py run`` name them), and on every task whose answers disagree asks the judge what the
``listwise`` strategy asks it -- the same options (``listwise_options``: answer groups, most votes first, each with
its first trajectory's logged work) through ``ListwiseJudge`` -- once as listed and once reversed. From those two
calls it grades, with each task's own checker, three aggregators on identical samples:

- ``majority``: the vote over the logged answers, grouped with the task's own checker as a run groups them today
  (the logs' own AGGREGATE groups predate a checker fix that merged right answers into wrong groups);
- ``listwise, one order``: the judge asked once (``ListwiseJudge(orders=1)``);
- ``listwise, both orders``: the probabilities averaged over the two orders (the strategy's default).

It prints the paired wins and losses of each against the majority (exact McNemar p) over all tasks, and the
oracle bound (some option was right). Tasks whose trajectories agree are the same under every aggregator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from peerstep.client import ModelClient
from peerstep.evals import mcnemar_exact
from peerstep.grading import Checker
from peerstep.steplog import StepKind, StepLog, process_step_texts, runs_dir
from peerstep.verify import Candidate, ListwiseJudge, VerifierError, combine_orders, listwise_options, majority_vote

sys.path.insert(0, str(Path(__file__).parent))
from heldout import task_checker


def vote(records: list[Any], checker: Checker) -> Any:
    """The majority vote over the trajectories' final answers, grouped with the task's checker."""
    answers = {r.trajectory_id: r.text for r in records if r.kind == StepKind.FINAL and r.trajectory_id >= 0}
    return majority_vote([Candidate(trajectory_id=tid, answer=a) for tid, a in sorted(answers.items()) if a],
                         checker)


async def judge_task(judge: ListwiseJudge, run_id: str, runs: Path, checker: Checker) -> dict[str, Any] | None:
    """The judge's verdicts in both orders on one run's disagreeing answers; None when they agree."""
    with StepLog.open(run_id, runs) as log:
        records = list(log.records())
    votes = vote(records, checker)
    groups = [tuple(g) for g in votes.groups]
    if len(groups) < 2:
        return None
    question = next(r.text for r in records if r.kind == StepKind.RUN_START and r.trajectory_id == groups[0][1][0])
    ordered, options = listwise_options(groups, question or "", lambda tid: process_step_texts(
        [r for r in records if r.trajectory_id == tid]))
    out: dict[str, Any] = {"options": [g[0] for g in ordered], "majority": votes.answer}
    try:
        forward = await judge.choose(question or "", options)
        backward = await judge.choose(question or "", list(reversed(options)))
    except VerifierError as exc:  # the strategy would fall back to the vote: so does the comparison
        return {**out, "error": str(exc), "one_order": out["majority"], "both_orders": out["majority"]}
    n = len(options)
    out["one_order"] = ordered[forward.index][0]
    out["forward"], out["backward"] = forward.probabilities, backward.probabilities
    try:
        out["both_orders"] = ordered[combine_orders(forward, backward, n).index][0]
    except VerifierError as exc:
        out["both_orders"], out["error"] = out["majority"], str(exc)
    return out


async def main_async(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for path in args.results for line in Path(path).read_text().splitlines()
            if line.strip()]
    rows = [r for r in rows if r["strategy"] == args.strategy and r.get("run_id")][:args.limit]
    client = ModelClient(args.base_url, args.model)
    judge = ListwiseJudge(client, orders=1)
    tasks: list[dict[str, Any]] = []
    try:
        for i, row in enumerate(rows, 1):
            grade, checker = task_checker(row["task_id"])
            verdicts = await judge_task(judge, row["run_id"], args.runs, checker)
            with StepLog.open(row["run_id"], args.runs) as log:
                majority = vote(list(log.records()), checker).answer
            entry = {"task_id": row["task_id"], "majority_correct": grade(majority)}
            if verdicts is None:
                entry.update(disagree=False, one_order_correct=entry["majority_correct"],
                             both_orders_correct=entry["majority_correct"], oracle=entry["majority_correct"])
            else:
                entry.update(disagree=True, **verdicts, one_order_correct=grade(verdicts["one_order"]),
                             both_orders_correct=grade(verdicts["both_orders"]),
                             oracle=any(grade(o) for o in verdicts["options"]))
                assert grade(verdicts["majority"]) == entry["majority_correct"], row["task_id"]
            tasks.append(entry)
            print(f"\r{i}/{len(rows)} tasks, {sum(t['disagree'] for t in tasks)} disagree", end="", flush=True)
    finally:
        await client.close()
    print()
    rows_out = {}
    for name in ("majority", "one_order", "both_orders", "oracle"):
        key = name if name == "oracle" else f"{name}_correct"
        mine = [bool(t[key]) for t in tasks]
        base = [t["majority_correct"] for t in tasks]
        won = sum(m and not b for m, b in zip(mine, base, strict=True))
        lost = sum(b and not m for m, b in zip(mine, base, strict=True))
        rows_out[name] = {"solved": sum(mine), "tasks": len(mine), "won": won, "lost": lost,
                          "p": mcnemar_exact(won, lost),
                          "solved_where_disagree": sum(bool(t[key]) for t in tasks if t["disagree"])}
    disagree = sum(t["disagree"] for t in tasks)
    print(f"{len(tasks)} tasks of {args.strategy} runs, answers disagree on {disagree}; judge {args.model}")
    print("| aggregator | solved | solved where answers disagree | vs majority: won / lost (exact McNemar p) |")
    print("|---|---|---|---|")
    for name, r in rows_out.items():
        label = {"one_order": "listwise, one order", "both_orders": "listwise, both orders (default)",
                 "oracle": "oracle (some option right)"}.get(name, name)
        vs = "—" if name == "majority" else f"{r['won']} / {r['lost']} (p {r['p']:.2g})"
        print(f"| {label} | {r['solved']}/{r['tasks']} | {r['solved_where_disagree']}/{disagree} | {vs} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "strategy": args.strategy,
                                         "results": [str(p) for p in args.results], "rows": rows_out,
                                         "tasks": tasks}, indent=1) + "\n")
        print(f"wrote {args.json}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="per-episode result files (.jsonl) of bench/heldout.py")
    p.add_argument("--strategy", default="majority", help="whose runs to re-aggregate")
    p.add_argument("--runs", type=Path, default=runs_dir(), help="where their step logs are (default: peerstep's)")
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--limit", type=int, default=None, help="only the first N runs (a smoke test)")
    p.add_argument("--json", type=Path, default=None)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
