"""What reading peers did to each trajectory of logged LeaP runs: kept its own answer, or switched, for better or worse.

    .venv/bin/python bench/peer_switches.py bench/results/dev-gsm-symbolic-no-from-output-leap-*.jsonl

A leap episode's vote can only move if trajectories change their answers after reading their peers' comments. For
each trajectory that was shown a comment, this compares the number its last program printed before the first
comment (what it would have answered alone) with the answer it submitted, both graded by the task's own checker
(found by task id in ``bench/heldout.py``'s splits). Per strategy it prints: right and kept, right -> wrong (hurt),
wrong -> right (helped), wrong and still wrong; and how many switches took a peer's number. Observational, from the
step logs of the runs the result files name (their run ids); nothing is re-run. "vote before comments" is the
majority vote over those printed numbers: what the episode would have answered had nobody read a peer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from peerstep.grading import drop_zero_decimals, last_number_text
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.verify import Candidate, majority_vote

sys.path.insert(0, str(Path(__file__).parent))
from heldout import task_checker

CLASSES = ("right, kept", "right -> wrong", "wrong -> right", "wrong, kept", "wrong -> other wrong",
           "no program before peers")


def own_numbers(records: list[StepRecord]) -> dict[int, tuple[str | None, str | None, bool]]:
    """trajectory -> (the number its last program printed before its first comment, its submitted answer, whether
    it was shown a comment at all)."""
    before: dict[int, str | None] = {}
    final: dict[int, str | None] = {}
    commented: set[int] = set()
    for rec in records:
        tid = rec.trajectory_id
        if tid < 0:
            continue
        if rec.kind is StepKind.PEER_INJECT:
            commented.add(tid)
        elif rec.kind is StepKind.OBSERVATION and tid not in commented and rec.tool and rec.tool.ok \
                and rec.tool.output and not rec.tool.output.startswith("Answer submitted"):
            before[tid] = last_number_text(rec.tool.output)
        elif rec.kind is StepKind.FINAL:
            final[tid] = rec.text
    return {tid: (before.get(tid), final.get(tid), tid in commented) for tid in set(before) | set(final)}


def classify(right_before: bool | None, right_after: bool, switched: bool) -> str:
    if right_before is None:
        return "no program before peers"
    if right_before:
        return "right, kept" if right_after else "right -> wrong"
    if right_after:
        return "wrong -> right"
    return "wrong -> other wrong" if switched else "wrong, kept"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="per-episode results (.jsonl) of leap runs")
    parser.add_argument("--limit", type=int, default=None, help="only tasks with index below this")
    args = parser.parse_args()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    adopted: Counter[str] = Counter()
    solved: Counter[str] = Counter()  # episodes the run solved
    solved_before: Counter[str] = Counter()  # episodes the vote over the numbers printed before any comment solves
    episodes: Counter[str] = Counter()
    for path in args.results:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if not row["strategy"].startswith("leap") or (args.limit is not None and row["index"] >= args.limit):
                continue
            grade, checker = task_checker(row["task_id"])
            with StepLog.open(row["run_id"]) as log:
                numbers = own_numbers(list(log.records()))
            printed = {tid: b for tid, (b, _, _) in numbers.items()}
            alone = majority_vote([Candidate(trajectory_id=t, answer=b) for t, b in sorted(printed.items()) if b],
                                  checker)
            episodes[row["strategy"]] += 1
            solved[row["strategy"]] += bool(row["correct"])
            solved_before[row["strategy"]] += grade(alone.answer if alone else None)
            for tid, (before, after, commented) in numbers.items():
                if not commented:
                    continue
                same = before is not None and after is not None and same_number(before, after)
                kind = classify(None if before is None else grade(before), grade(after), not same)
                counts[row["strategy"]][kind] += 1
                peers = {b for t, b in printed.items() if t != tid and b is not None}
                if not same and before is not None and after in peers:
                    adopted[row["strategy"]] += 1
    print("| strategy | episodes | solved | vote before comments: solved | trajectories shown a comment | "
          + " | ".join(CLASSES) + " | switches to a peer's number |")
    print("|---|---|---|---|---|" + "---|" * (len(CLASSES) + 1))
    for strategy, c in counts.items():
        print(f"| {strategy} | {episodes[strategy]} | {solved[strategy]} | {solved_before[strategy]} | "
              f"{sum(c.values())} | " + " | ".join(str(c[k]) for k in CLASSES) + f" | {adopted[strategy]} |")


def same_number(a: str, b: str) -> bool:
    """Whether two answers state the same number as written (63.0 is 63; 63.5 is not 63)."""
    return drop_zero_decimals(last_number_text(a) or a) == drop_zero_decimals(last_number_text(b) or b)


if __name__ == "__main__":
    main()
