"""Many `peerstep solve` processes against one `peerstep serve`: streaming clients must each get their whole reply.

Run: ``python bench/concurrency.py [--clients 16] [--rounds 1] [--model qwen2.5-coder-0.5b-instruct]``.

It starts ``peerstep serve`` (llama.cpp, the small model by default), then runs ``--clients`` ``peerstep solve``
processes at once on an easy question, twice per round: streaming (the default live view) and non-streaming
(``--quiet``), alternating which goes first from round to round so drift on a shared machine falls on both. Every
run's step log is read back: each model reply must be non-empty with a finish reason, every run must end with
the right answer (``--gold``), and every process must exit 0. It prints throughput for both (runs and generated
tokens per second of wall time) and their ratio, streaming over non-streaming. Exit status 1 if any check fails.

Before issue 10 (item 1), llama-cpp-python's server cut each stream off as the next request arrived
(``interrupt_requests``), and the client accepted the empty replies as answers: every streaming run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from peerstep.steplog import StepKind, StepLog

QUESTION = "What is 17 * 23?"
GOLD = "391"


@dataclass
class Phase:
    label: str
    seconds: float = 0.0
    runs: int = 0
    correct: int = 0
    tokens: int = 0
    replies: int = 0
    problems: list[str] = field(default_factory=list)


def serve(model: str, state: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PEERSTEP_ENGINE_STATE": str(state)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "peerstep.cli", "serve", "--model", model], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 600
    while not list(state.glob("*.json")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"peerstep serve did not start; see {log}")
        time.sleep(0.5)
    info = json.loads(next(state.glob("*.json")).read_text())
    return proc, str(info["base_url"])


def run_phase(label: str, streaming: bool, clients: int, base_url: str, model: str, workdir: Path,
              max_steps: int) -> Phase:
    runs = workdir / label
    env = {**os.environ, "PEERSTEP_RUNS": str(runs), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "peerstep.cli", "solve", QUESTION, "--base-url", base_url, "--model", model,
           "--gold", GOLD, "--no-python", "--max-steps", str(max_steps)]
    if not streaming:
        cmd.append("--quiet")
    phase = Phase(label)
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(clients)]
    outputs = [p.communicate() for p in procs]
    phase.seconds = time.monotonic() - started
    for i, (proc, (_out, err)) in enumerate(zip(procs, outputs, strict=True)):
        if proc.returncode != 0:
            phase.problems.append(f"client {i} exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
    for path in sorted(runs.glob("*.sqlite")):
        phase.runs += 1
        with StepLog(path, path.stem) as log:
            meta = log.meta()
            if meta.get("correct") is True:
                phase.correct += 1
            else:
                phase.problems.append(f"{path.stem}: answer {meta.get('answer')!r}, status {meta.get('status')}")
            for rec in log.records(kind=StepKind.REASON):
                phase.replies += 1
                phase.tokens += rec.usage.completion_tokens if rec.usage else 0
                if not (rec.text or "").strip() or rec.finish_reason is None:
                    phase.problems.append(f"{path.stem}: an empty or unfinished reply (text {rec.text!r}, "
                                          f"finish reason {rec.finish_reason!r})")
    if phase.runs != clients:
        phase.problems.append(f"{phase.runs} step logs for {clients} clients")
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--max-steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="peerstep-concurrency-") as tmp:
        workdir = Path(tmp)
        server, base_url = serve(args.model, workdir / "state", workdir / "serve.log")
        phases: list[Phase] = []
        try:
            print(f"serving {args.model} at {base_url}; {args.clients} clients per phase", flush=True)
            for r in range(args.rounds):
                order = [True, False] if r % 2 == 0 else [False, True]
                for streaming in order:
                    label = f"{'streaming' if streaming else 'non-streaming'}-{r + 1}"
                    phase = run_phase(label, streaming, args.clients, base_url, args.model, workdir, args.max_steps)
                    phases.append(phase)
                    print(f"{label:17} {phase.seconds:6.1f} s  runs {phase.runs}  correct {phase.correct}  "
                          f"replies {phase.replies}  tokens {phase.tokens}  problems {len(phase.problems)}",
                          flush=True)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)

    def totals(streaming: bool) -> tuple[float, int, int, int, int]:
        chosen = [p for p in phases if p.label.startswith("streaming" if streaming else "non-streaming")]
        return (sum(p.seconds for p in chosen), sum(p.runs for p in chosen), sum(p.correct for p in chosen),
                sum(p.tokens for p in chosen), sum(p.replies for p in chosen))

    s_sec, s_runs, s_ok, s_tok, s_rep = totals(True)
    n_sec, n_runs, n_ok, n_tok, n_rep = totals(False)
    print()
    print(f"streaming:     {s_ok}/{s_runs} correct, {s_rep} replies, {s_runs / s_sec:.3f} runs/s, "
          f"{s_tok / s_sec:.1f} generated tokens/s")
    print(f"non-streaming: {n_ok}/{n_runs} correct, {n_rep} replies, {n_runs / n_sec:.3f} runs/s, "
          f"{n_tok / n_sec:.1f} generated tokens/s")
    print(f"throughput ratio, streaming / non-streaming: {(s_runs / s_sec) / (n_runs / n_sec):.3f} (runs/s), "
          f"{(s_tok / s_sec) / (n_tok / n_sec):.3f} (tokens/s)")
    problems = [f"{p.label}: {msg}" for p in phases for msg in p.problems]
    for msg in problems:
        print("PROBLEM", msg)
    print("every reply non-empty with a finish reason and every run correct:", "yes" if not problems else "NO")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
