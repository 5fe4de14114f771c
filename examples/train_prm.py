"""Train a process reward model on a trl-prm export, then score a trajectory with it: what `peerstep prm train` does.

    peerstep label RUN_ID --rollouts 8                  # Monte-Carlo step labels
    peerstep export RUN_ID --format trl-prm --out prm.jsonl
    python examples/train_prm.py prm.jsonl prm-ckpt              # a tiny base built here, CPU, seconds
    python examples/train_prm.py prm.jsonl prm-ckpt --base DIR   # a real base model (on a GPU)

Without ``--base`` it builds a tiny two-layer model (``peerstep.prm.init_tiny``, tokenizer trained on the rows)
and trains it for a few steps: that proves the pipeline — the rows tokenise as TRL does, the loss goes down, the
checkpoint saves, loads and scores — and nothing about PRM quality. Use the checkpoint in runs with
``peerstep solve … --strategy best-of-n --verifier prm:prm-ckpt``. Needs ``pip install 'peerstep[prm]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from peerstep.prm import init_tiny, load_rows, train_prm
from peerstep.verify import TrajectoryView, TransformersPRM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a trl-prm export (JSON lines or a datasets directory)")
    parser.add_argument("out", type=Path, help="where the checkpoint goes")
    parser.add_argument("--base", help="a base model directory or hub id (default: a tiny one built here)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 20 tiny, 200 real)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 5e-3 tiny, 1e-5 real)")
    args = parser.parse_args()

    rows = load_rows(args.dataset)
    base = args.base
    if base is None:
        base = str(init_tiny(Path(tempfile.mkdtemp(prefix="tiny-prm-")),
                             [r["prompt"] + "\n" + "\n".join(r["completions"]) for r in rows]))
    tiny = args.base is None
    result = train_prm(args.dataset, base, args.out, steps=args.steps or (20 if tiny else 200),
                       lr=args.lr or (5e-3 if tiny else 1e-5), batch_size=4)
    print(f"trained {result.steps} steps on {result.rows} rows: loss {result.losses[0]:.3f} -> "
          f"{result.losses[-1]:.3f}; checkpoint {result.out}")

    row = rows[0]  # the PRM's reading of a trajectory, step by step
    view = TrajectoryView(trajectory_id=0, question=row["prompt"], steps=row["completions"], finished=True)
    score = asyncio.run(TransformersPRM(result.out).score(view))
    print(f"first row: labels {row['labels']}, PRM {score.rationale}")


if __name__ == "__main__":
    main()
