"""What reading peers did to each trajectory of logged LeaP runs: kept its own answer, or switched, for better or worse.

    .venv/bin/python bench/peer_switches.py bench/results/dev-gsm-symbolic-no-from-output-leap-*.jsonl

A leap episode's vote can only move if trajectories change their answers after reading their peers' comments. For
each trajectory that was shown a comment, this compares the number its last program printed before the first
comment (what it would have answered alone) with the answer it submitted, both graded by the task's own checker
(found by task id in ``bench/heldout.py``'s splits). Per strategy it prints: right and kept, right -> wrong (hurt),
wrong -> right (helped), wrong and still wrong; and how many switches took a peer's number. Observational, from the
step logs of the runs the result files name (their run ids); nothing is re-run. "vote before comments" is the
majority vote over those printed numbers: what the episode would have answered had nobody read a peer. "vote if a
switch needs a re-run" replays ``SharingConfig.switch_needs_rerun`` (``peerstep.peers.voting_answer``): a switch
counts only if the trajectory's own tool printed the new answer after the comment. That rule only chooses what each
trajectory votes with, so the replay is exact.

Step logs live in the machine's cache and go with it: ``--saved FILE`` appends what this script read from each
episode (one row per trajectory) to FILE, and reads episodes whose logs are gone from it, so the figures can be
recomputed from the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from peerstep.grading import drop_zero_decimals, last_number_text
from peerstep.peers import outputs_around_comments, own_number, voting_answer
from peerstep.steplog import StepKind, StepLog, StepLogError, StepRecord
from peerstep.verify import Candidate, majority_vote

sys.path.insert(0, str(Path(__file__).parent))
from heldout import task_checker

CLASSES = ("right, kept", "right -> wrong", "wrong -> right", "wrong, kept", "wrong -> other wrong",
           "no program before peers")


def trajectories(records: list[StepRecord]) -> list[dict[str, Any]]:
    """One row per trajectory of an episode: the number its last program printed before its first comment
    (``own``), what it submitted, whether it was shown a comment, and what it votes with when a switch needs a
    re-run."""
    by_tid: dict[int, list[StepRecord]] = defaultdict(list)
    for rec in records:
        if rec.trajectory_id >= 0:
            by_tid[rec.trajectory_id].append(rec)
    rows = []
    for tid, recs in sorted(by_tid.items()):
        outputs = outputs_around_comments(recs)
        final = next((r.text for r in reversed(recs) if r.kind is StepKind.FINAL), None)
        rows.append({"trajectory": tid, "own": own_number(outputs), "submitted": final,
                     "commented": outputs.commented, "votes_with": voting_answer(final, outputs)})
    return rows


def classify(right_before: bool | None, right_after: bool, switched: bool) -> str:
    if right_before is None:
        return "no program before peers"
    if right_before:
        return "right, kept" if right_after else "right -> wrong"
    if right_after:
        return "wrong -> right"
    return "wrong -> other wrong" if switched else "wrong, kept"


def vote(answers: dict[int, str | None], checker: Any) -> str | None:
    decision = majority_vote([Candidate(trajectory_id=t, answer=a) for t, a in sorted(answers.items()) if a],
                             checker)
    return decision.answer if decision else None


def load_saved(path: Path | None) -> dict[str, list[dict[str, Any]]]:
    """run id -> its trajectory rows, from a file ``--saved`` wrote."""
    saved: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            saved[row["run_id"]].append(row)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="per-episode results (.jsonl) of leap runs")
    parser.add_argument("--limit", type=int, default=None, help="only tasks with index below this")
    parser.add_argument("--first", type=int, default=0, help="only tasks with index at least this")
    parser.add_argument("--saved", type=Path, default=None,
                        help="per-trajectory rows: read for runs whose step logs are gone, appended for the rest")
    args = parser.parse_args()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    adopted: Counter[str] = Counter()
    solved: Counter[str] = Counter()  # episodes the run solved
    solved_before: Counter[str] = Counter()  # episodes the vote over the numbers printed before any comment solves
    solved_rerun: Counter[str] = Counter()  # episodes solved when a switch needs a re-run
    won_lost: dict[str, Counter[str]] = defaultdict(Counter)  # the re-run rule against the run's own vote
    episodes: Counter[str] = Counter()
    saved = load_saved(args.saved)
    for path in args.results:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if not row["strategy"].startswith("leap") or row["index"] < args.first or (
                    args.limit is not None and row["index"] >= args.limit):
                continue
            grade, checker = task_checker(row["task_id"])
            if row["run_id"] in saved:
                rows = saved[row["run_id"]]
            else:
                try:
                    with StepLog.open(row["run_id"]) as log:
                        rows = trajectories(list(log.records()))
                except StepLogError as exc:
                    raise SystemExit(f"{exc}; pass --saved with the file an earlier run of this script wrote") from exc
                if args.saved is not None:
                    with args.saved.open("a") as f:
                        for r in rows:
                            f.write(json.dumps({"run_id": row["run_id"], "task_id": row["task_id"],
                                                "strategy": row["strategy"], **r}) + "\n")
            strategy = row["strategy"]
            episodes[strategy] += 1
            solved[strategy] += bool(row["correct"])
            printed = {r["trajectory"]: r["own"] for r in rows}
            solved_before[strategy] += grade(vote(printed, checker))
            rerun = grade(vote({r["trajectory"]: r["votes_with"] for r in rows}, checker))
            solved_rerun[strategy] += rerun
            if rerun != bool(row["correct"]):
                won_lost[strategy]["won" if rerun else "lost"] += 1
            for r in rows:
                if not r["commented"] or r["submitted"] is None:
                    continue
                before, after = r["own"], r["submitted"]
                same = before is not None and same_number(before, after)
                counts[strategy][classify(None if before is None else grade(before), grade(after), not same)] += 1
                peers = {b for t, b in printed.items() if t != r["trajectory"] and b is not None}
                if not same and before is not None and any(same_number(after, p) for p in peers):
                    adopted[strategy] += 1
    print("| strategy | episodes | solved | vote before comments: solved | vote if a switch needs a re-run: solved "
          "(won / lost vs the run) | trajectories shown a comment | " + " | ".join(CLASSES)
          + " | switches to a peer's number |")
    print("|---|---|---|---|---|---|" + "---|" * (len(CLASSES) + 1))
    for strategy in episodes:
        c = counts[strategy]
        print(f"| {strategy} | {episodes[strategy]} | {solved[strategy]} | {solved_before[strategy]} | "
              f"{solved_rerun[strategy]} ({won_lost[strategy]['won']} / {won_lost[strategy]['lost']}) | "
              f"{sum(c.values())} | " + " | ".join(str(c[k]) for k in CLASSES) + f" | {adopted[strategy]} |")


def same_number(a: str, b: str) -> bool:
    """Whether two answers state the same number as written (63.0 is 63; 63.5 is not 63)."""
    return drop_zero_decimals(last_number_text(a) or a) == drop_zero_decimals(last_number_text(b) or b)


if __name__ == "__main__":
    main()
