"""Vote variants on the same trajectories: tool-backed weighting and a greedy first trajectory (issue 13).

    .venv/bin/python bench/vote_variants.py bench/results/heldout-*-adaptive.jsonl \\
        bench/results/heldout-{word-problems,gsm-symbolic}-from-output.jsonl --json bench/results/votes.json

Both variants change only which answers vote and how much each weighs, so the fair comparison holds the samples
fixed. The script reads the step logs of earlier ``majority`` runs and of ``single`` runs of the same tasks (the
per-episode result files of ``bench/heldout.py run`` name them) and grades, with each task's own checker:

- ``majority@4``: the vote the runs made (four trajectories at temperature 0.6);
- ``tool-backed@4``: the same four answers, each counting 1 when one of its own trajectory's tool results states
  it and ``UNBACKED_WEIGHT`` when none does (``peerstep.verify.backed_by`` and ``tool_backed_vote``: the rule the
  ``tool-backed`` aggregate applies in a run);
- ``greedy-first@4``: the greedy ``single`` trajectory as trajectory 0 (what ``ParallelConfig.greedy_first``
  samples: the run's own temperature, 0) and the majority run's trajectories 1-3 as the others; ties go to
  trajectory 0. Its tokens are the single run's plus those three trajectories', so it is compared at the cost it
  would have;
- ``greedy-first + tool-backed@4``: both;
- ``single`` and the oracle (some trajectory of the majority run was right), for reference.

``--mix OTHER.jsonl ...`` adds different models per trajectory: the result files of another model's ``majority``
runs of the same tasks. Independent trajectories sample the same whichever run they belong to, so a mixed run is
replayed from the two: ``mix 2+2`` votes over trajectories 0-1 of this run and 0-1 of the other model's (four in
all), ``mix 4+4`` over all eight; the first model's trajectories come first, so a tie goes to its answer (order
the stronger model first). ``other majority@4`` is the other model's own vote. Only tasks both ran are compared.

Each variant's rule was fixed before it was run on any split. Run on the dev split first, then once on held-out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from peerstep.evals import mcnemar_exact
from peerstep.grading import Checker
from peerstep.steplog import StepKind, StepLog, runs_dir
from peerstep.verify import Candidate, backed_by, majority_vote, tool_backed_vote

sys.path.insert(0, str(Path(__file__).parent))
from heldout import task_checker

FINISH = "submit_answer"


def trajectories(run_id: str, runs: Path) -> dict[int, dict[str, Any]]:
    """Each trajectory of a logged run: its answer, its tools' outputs and its generated tokens."""
    with StepLog.open(run_id, runs) as log:
        records = list(log.records())
    out: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.trajectory_id < 0:
            continue
        t = out.setdefault(r.trajectory_id, {"answer": None, "outputs": [], "tokens": 0})
        if r.kind in (StepKind.REASON, StepKind.SUMMARY) and r.usage is not None:  # what the eval counts
            t["tokens"] += r.usage.completion_tokens
        elif r.kind == StepKind.OBSERVATION and r.tool is not None and r.tool.name != FINISH \
                and r.tool.ok is not False and r.text:
            t["outputs"].append(r.text)
        elif r.kind == StepKind.FINAL:
            t["answer"] = r.text
    return out


def decide(trajs: dict[int, dict[str, Any]], backed: bool, checker: Checker) -> str | None:
    """The vote a run with today's code would make: grouped by the task's checker, as ``ParallelRun`` groups."""
    candidates = [Candidate(trajectory_id=tid, answer=t["answer"], backed=None if not backed else
                            t["backed"] if "backed" in t else backed_by(t["answer"], t["outputs"]))
                  for tid, t in sorted(trajs.items()) if t["answer"]]
    return (tool_backed_vote if backed else majority_vote)(candidates, checker).answer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="per-episode result files (.jsonl) of bench/heldout.py "
                                                          "holding majority and single runs of the same tasks")
    p.add_argument("--strategy", default="majority", help="whose runs to re-aggregate (the greedy-first rows need "
                                                          "independent samples: majority only)")
    p.add_argument("--mix", nargs="+", type=Path, default=[], help="result files of another model's majority runs "
                                                                 "of the same tasks: adds the mixed-model votes")
    p.add_argument("--runs", type=Path, default=runs_dir(), help="where their step logs are (default: peerstep's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rows = [json.loads(line) for path in args.results for line in path.read_text().splitlines() if line.strip()]
    sampled_runs = {r["task_id"]: r for r in rows if r["strategy"] == args.strategy and r.get("run_id")}
    single = {r["task_id"]: r for r in rows if r["strategy"] == "single" and r.get("run_id")}
    other = {r["task_id"]: r for path in args.mix for line in path.read_text().splitlines() if line.strip()
             for r in [json.loads(line)] if r["strategy"] == "majority" and r.get("run_id")}
    anchor = args.strategy == "majority"
    base = f"{args.strategy}@4"
    tasks = []
    names: list[str] = []  # the variants, in the order of the table
    chosen = sampled_runs.keys() & single.keys() if anchor else sampled_runs.keys()
    for task_id in sorted(chosen & other.keys() if args.mix else chosen):
        grade, checker = task_checker(task_id)
        sampled = trajectories(sampled_runs[task_id]["run_id"], args.runs)
        cost = sum(t["tokens"] for t in sampled.values())
        logged = sampled_runs[task_id]["answer"]  # the vote as the run made it (before the checker fix: see below)
        answers = {f"{base}, as run": (logged, cost), base: (decide(sampled, False, checker), cost),
                   "tool-backed": (decide(sampled, True, checker), cost)}
        if anchor:
            # the greedy trajectory's answer and tokens as its result row has them: the vote needs no more of it
            # (its step log may be gone): its backing counts as unknown, i.e. in full
            greedy = {"answer": single[task_id]["answer"], "tokens": single[task_id]["tokens"], "outputs": [],
                      "backed": None}
            anchored = {0: greedy, **{tid: t for tid, t in sampled.items() if tid != 0}}
            cost = sum(t["tokens"] for t in anchored.values())
            answers.update({"greedy-first": (decide(anchored, False, checker), cost),
                            "greedy-first + tool-backed": (decide(anchored, True, checker), cost),
                            "single": (greedy["answer"], greedy["tokens"])})
        if args.mix:
            theirs = trajectories(other[task_id]["run_id"], args.runs)
            for label, k in (("mix 2+2", 2), ("mix 4+4", 4)):
                mixed = {**{tid: t for tid, t in sampled.items() if tid < k},
                         **{100 + tid: t for tid, t in theirs.items() if tid < k}}  # ours first: ties go to ours
                answers[label] = (decide(mixed, False, checker), sum(t["tokens"] for t in mixed.values()))
            answers["other majority@4"] = (decide(theirs, False, checker), sum(t["tokens"] for t in theirs.values()))
        names = list(answers)
        tasks.append({"task_id": task_id, "oracle": any(grade(t["answer"]) for t in sampled.values()),
                      "backed": {tid: backed_by(t["answer"], t["outputs"]) for tid, t in sampled.items()},
                      **{name: {"answer": a, "correct": grade(a), "tokens": tok}
                         for name, (a, tok) in answers.items()}})
    bases = [base, "single"] if anchor else [base]
    unbacked = sum(not b for t in tasks for b in t["backed"].values())
    print(f"{len(tasks)} tasks of {args.strategy} runs; {unbacked} of {sum(len(t['backed']) for t in tasks)} sampled "
          "answers not backed by their trajectory's tool results")
    print("| variant (same samples) | solved | tokens / task | tokens per solved |"
          + "".join(f" vs {b}: won / lost (exact McNemar p) |" for b in bases))
    print("|---|---|---|---|" + "---|" * len(bases))
    table = {}
    for name in names:
        solved = sum(t[name]["correct"] for t in tasks)
        tokens = sum(t[name]["tokens"] for t in tasks)
        row: dict[str, Any] = {"solved": solved, "tasks": len(tasks), "tokens_per_task": tokens / max(len(tasks), 1)}
        cells = []
        for b in bases:
            won = sum(t[name]["correct"] and not t[b]["correct"] for t in tasks)
            lost = sum(t[b]["correct"] and not t[name]["correct"] for t in tasks)
            row[f"vs {b}"] = {"won": won, "lost": lost, "p": mcnemar_exact(won, lost)}
            cells.append("—" if b == name else f"{won} / {lost} (p {mcnemar_exact(won, lost):.2g})")
        table[name] = row
        print(f"| {name} | {solved}/{len(tasks)} | {row['tokens_per_task']:,.0f} | "
              f"{tokens / solved if solved else float('nan'):,.0f} | " + " | ".join(cells) + " |")
    print(f"| oracle (some sampled trajectory right) | {sum(t['oracle'] for t in tasks)}/{len(tasks)} | | |"
          + " |" * len(bases))
    if args.json:
        args.json.write_text(json.dumps({"strategy": args.strategy, "results": [str(r) for r in args.results],
                                         "mix": [str(m) for m in args.mix],
                                         "rows": table, "tasks": tasks}, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
