"""Solve one question from Python with the embedded default model.

    python examples/solve_question.py "What is 17 * 23 + 5?"

Starts the llama.cpp engine (fetching the model on first use), runs one trajectory, prints the answer
and where the step log is, and stops the engine. Pass base_url=... to use a running server instead.
"""

from __future__ import annotations

import sys

from peerstep import StepLog, solve


def main() -> None:
    question = sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23 + 5?"
    result = solve(question, gold=sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"answer: {result.answer}  (model calls: {result.steps}, tokens: {result.tokens})")
    with StepLog.open(result.run_id) as log:
        for record in log.records():
            print(f"  {record.kind.value:<12} {(record.text or '')[:80]!r}")


if __name__ == "__main__":
    main()
