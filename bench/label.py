"""CPU labelling benchmark (issue 15): Monte-Carlo step labels on the built-in math set, full rollouts vs
OmegaPRM-style binary search, on the same trajectories.

    peerstep serve --engine llamacpp --port 8937            # in another shell (or any OpenAI-compatible server)
    python bench/label.py --base-url http://127.0.0.1:8937/v1 --limit 4 -k 8 --json bench/results/label.json

What it does, through the CLI only (``peerstep eval`` and ``peerstep label``, so the numbers are the ones a user
gets): N ``single`` episodes of the math set; their step logs copied into two runs folders; ``label --search full``
on one copy and ``label --search binary`` on the other (labels are append-only and a labelled step is not labelled
again, so the two searches must not share a log). Then, from the logs alone:

- label statistics of the full search: the soft values' histogram and the first-error positions (1-based step);
- agreement of binary search with full rollouts: per step, the binary search's hard label (probed, or inferred the
  way ``peerstep export`` infers it) against the full search's; per trajectory, whether both flag the same first
  error (or both none);
- cost per mode: rollouts, rollout tokens per labelled step, minutes per 100 labelled steps. For binary search a
  "labelled step" is counted twice: per label record written (probes) and per step an export gets a label for
  (probes + inferred) -- the second is what the rollouts buy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from _vllm import cache_use, prefix_cache_counters

from peerstep.export import step_labels
from peerstep.steplog import StepKind, StepLog, labels_of, trajectory_steps

PY = [sys.executable, "-m", "peerstep"]


def _cli(args: list[str], runs: Path, capture: bool = False) -> str:
    """One peerstep command with its runs folder; its progress goes to this terminal."""
    env = {**os.environ, "PEERSTEP_RUNS": str(runs)}
    done = subprocess.run(PY + args, env=env, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def _trajectories(run_ids: list[str], runs: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(run, trajectory) -> each step's hard label / value as the labels (and the export's inference) give them,
    the steps that got a label record, and the flagged first error."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for run_id in run_ids:
        with StepLog.open(run_id, runs) as log:
            records = list(log.records())
        labels = labels_of(records)
        for tid in sorted({r.trajectory_id for r in records if r.trajectory_id >= 0 and r.kind != StepKind.LABEL}):
            steps = trajectory_steps([r for r in records if r.trajectory_id == tid])
            if not any(s.reason.step_id in labels for s in steps):
                continue
            hard, values = step_labels(steps, labels)
            flagged = [i + 1 for i, s in enumerate(steps)
                       if s.reason.step_id in labels and labels[s.reason.step_id].data.get("first_error")]
            out[(run_id, tid)] = {"steps": len(steps), "hard": hard, "values": values,
                                  "probed": sum(1 for s in steps if s.reason.step_id in labels),
                                  "first_error": flagged[0] if flagged else None}
    return out


def _per(x: float, n: int) -> float | None:
    return round(x / n, 2) if n else None


def _cost(summary: dict[str, Any], steps: int) -> dict[str, Any]:
    labelled = summary["labelled"]
    per = _per
    return {"label_records": labelled, "labelled_steps": steps, "rollouts": summary["rollouts"],
            "full_rollouts": summary["full_rollouts"], "tokens": summary["tokens"], "seconds": summary["seconds"],
            "tokens_per_label_record": per(summary["tokens"], labelled),
            "tokens_per_labelled_step": per(summary["tokens"], steps),
            "minutes_per_100_label_records": per(summary["seconds"] * 100 / 60, labelled),
            "minutes_per_100_labelled_steps": per(summary["seconds"] * 100 / 60, steps)}


def figures(run_ids: list[str], full_dir: Path, binary_dir: Path, full_summary: dict[str, Any],
            binary_summary: dict[str, Any]) -> dict[str, Any]:
    """Everything the benchmark reports, from the two labelled copies of the runs and the label summaries."""
    full = _trajectories(run_ids, full_dir)
    binary = _trajectories(run_ids, binary_dir)
    values = Counter(f"{v:.3f}" for t in full.values() for v in t["values"] if v is not None)
    first = Counter(str(t["first_error"]) if t["first_error"] else "none" for t in full.values())
    agree = compared = undecided = fe_agree = 0
    for key, f in full.items():
        b = binary.get(key)
        if b is None:
            undecided += len(f["hard"])
            continue
        n = min(len(f["hard"]), len(b["hard"]))
        compared += n
        agree += sum(1 for i in range(n) if f["hard"][i] == b["hard"][i])
        undecided += len(f["hard"]) - n
        fe_agree += int(f["first_error"] == b["first_error"])
    return {
        "trajectories": len(full),
        "steps": sum(t["steps"] for t in full.values()),
        "full": {"value_histogram": dict(sorted(values.items())), "first_error_position": dict(sorted(first.items())),
                 "positive_steps": sum(sum(t["hard"]) for t in full.values()),
                 "negative_steps": sum(len(t["hard"]) - sum(t["hard"]) for t in full.values())},
        "agreement": {"steps_compared": compared, "hard_label_agreement": round(agree / compared, 3) if compared
                      else None, "steps_binary_left_undecided": undecided,
                      "first_error_agreement": round(fe_agree / len(full), 3) if full else None,
                      "binary_first_error_position": dict(sorted(Counter(
                          str(t["first_error"]) if t["first_error"] else "none" for t in binary.values()).items()))},
        "cost": {"full": _cost(full_summary, sum(len(t["hard"]) for t in full.values())),
                 "binary": _cost(binary_summary, sum(len(t["hard"]) for t in binary.values()))},
    }


def show(fig: dict[str, Any], size: dict[str, Any]) -> None:
    print(f"\n{size['tasks']} tasks of {size['dataset']} (seed {size['seed']}), single, model {size['model']}, "
          f"tools {size.get('tools') or 'as the eval had'}, "
          f"K={size['k']}: {fig['trajectories']} labelled trajectories, {fig['steps']} steps")
    print("full-rollout labels:")
    hist = fig["full"]["value_histogram"]
    top = max(hist.values(), default=1)
    for v, n in hist.items():
        print(f"  value {v}  {n:4d}  {'#' * max(1, round(30 * n / top))}")
    print(f"  first error at step: {fig['full']['first_error_position']}")
    a = fig["agreement"]
    print(f"binary vs full: hard labels agree on {a['hard_label_agreement']} of {a['steps_compared']} steps "
          f"({a['steps_binary_left_undecided']} left undecided by binary); first error agrees on "
          f"{a['first_error_agreement']} of trajectories (binary's: {a['binary_first_error_position']})")
    rows = ["label_records", "labelled_steps", "rollouts", "tokens", "seconds", "tokens_per_label_record",
            "tokens_per_labelled_step", "minutes_per_100_label_records", "minutes_per_100_labelled_steps"]
    print(f"{'cost':32s}{'full':>12s}{'binary':>12s}")
    for r in rows:
        print(f"  {r:30s}{fig['cost']['full'][r]!s:>12s}{fig['cost']['binary'][r]!s:>12s}")
    for mode in ("full", "binary"):
        cache = fig["cost"][mode].get("prefix_cache")
        if cache:
            print(f"  prefix cache ({mode}): {cache['hit_rate']} of {cache['prompt_tokens']:.0f} prompt tokens "
                  "served from it; prompt tokens computed per labelled step "
                  f"{cache['computed_prompt_tokens_per_labelled_step']} with it, "
                  f"{cache['prompt_tokens_per_labelled_step_without_cache']} without")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help="An OpenAI-compatible server, e.g. `peerstep serve`'s.")
    p.add_argument("--model", default=None, help="The model it serves (default: peerstep's default).")
    p.add_argument("--dataset", default="math")
    p.add_argument("--limit", type=int, default=4, help="Tasks (one single-strategy episode each).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-python", action="store_true", help="Calculator only (`peerstep eval --no-python`). "
                   "With Python the program-first loop solves most math tasks in one step, labelled by its outcome; "
                   "a 10-task pilot without it did not give longer trajectories: the 1.5B answered in prose and "
                   "called the calculator 0.1 times per task.")
    p.add_argument("-k", "--rollouts", type=int, default=8, help="Continuations per labelled step.")
    p.add_argument("--concurrency", type=int, default=1, help="Trajectories labelled at once (both modes).")
    p.add_argument("--work", type=Path, default=None, help="Keep the runs here (default: a temporary folder).")
    p.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    p.add_argument("--eval-report", type=Path, default=None, help="Label this earlier `peerstep eval --out` "
                   "report's first --limit episodes instead of running the eval (with --eval-runs).")
    p.add_argument("--eval-runs", type=Path, default=None, help="The runs folder of --eval-report's runs.")
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="peerstep-label-bench-"))
    full_dir, binary_dir = work / "full", work / "binary"
    full_dir.mkdir(parents=True, exist_ok=True)
    binary_dir.mkdir(parents=True, exist_ok=True)
    served = ["--base-url", a.base_url] + (["--model", a.model] if a.model else [])
    report = work / "eval.json"
    if a.eval_report is None:
        _cli(["eval", a.dataset, "--strategy", "single", "--limit", str(a.limit), "--seed", str(a.seed),
              "--out", str(report), *served, *(["--no-python"] if a.no_python else [])], full_dir)
    else:  # an earlier eval: its first --limit episodes, their logs copied (labels must not reach the originals)
        if a.eval_runs is None:
            p.error("--eval-report needs --eval-runs")
        earlier = json.loads(a.eval_report.read_text())
        earlier["outcomes"] = earlier["outcomes"][:a.limit]
        report.write_text(json.dumps(earlier))
        for o in earlier["outcomes"]:
            for f in a.eval_runs.glob(f"{o['run_id']}.*"):
                shutil.copy2(f, full_dir / f.name)
    outcomes = json.loads(report.read_text())["outcomes"]
    run_ids = [o["run_id"] for o in outcomes if o.get("run_id")]
    for run_id in run_ids:  # the binary search gets its own copy of every log and checkpoint store
        for f in full_dir.glob(f"{run_id}.*"):
            shutil.copy2(f, binary_dir / f.name)
    summaries, counters = {}, {}
    for mode, runs in (("full", full_dir), ("binary", binary_dir)):
        print(f"\nlabelling ({mode})", flush=True)
        before = prefix_cache_counters(a.base_url)
        out = _cli(["label", "--eval", str(report), "-k", str(a.rollouts), "--search", mode, "--concurrency",
                    str(a.concurrency), "--dir", str(runs), "--json", *served], runs, capture=True)
        summaries[mode] = json.loads(out)
        counters[mode] = (before, prefix_cache_counters(a.base_url))
    fig = figures(run_ids, full_dir, binary_dir, summaries["full"], summaries["binary"])
    for mode in counters:  # vLLM only: what its prefix cache served of the rollouts' prompts
        fig["cost"][mode]["prefix_cache"] = cache_use(*counters[mode], fig["cost"][mode]["labelled_steps"])
    size = {"dataset": a.dataset, "tasks": a.limit, "seed": a.seed, "k": a.rollouts, "model": a.model or "default",
            "tools": None if a.eval_report else "calculator" if a.no_python else "python, calculator",
            "concurrency": a.concurrency, "eval_accuracy": sum(bool(o.get("correct")) for o in outcomes) / len(outcomes)
            if outcomes else None, "work": str(work)}
    show(fig, size)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"size": size, **fig, "summaries": summaries}, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
