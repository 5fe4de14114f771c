"""``TransformersPRM``: a process reward model run in-process with ``transformers`` (CPU is enough for small ones).

It loads a token-classification checkpoint (``peerstep prm train`` writes one), tokenises the question and the
trajectory's steps exactly as TRL's ``PRMTrainer`` did in training (its own ``tokenize_row``: every step followed
by the step separator), and reads P(good) at each step's last token: one score per step. The trajectory's score
aggregates them: ``min`` by default (a solution is as good as its weakest step, the usual PRM reading), or
``prod`` or ``last``.

The steps are the ones process supervision defines (``peerstep.steplog._steps``: a model call with its tool
calls and their results), in the text the trl-prm export writes (``step_text``), when the run gives them
(``TrajectoryView.process_steps``); a hand-built view's ``steps`` are used as they are otherwise.

Inference runs in a worker thread (``asyncio.to_thread``) so the event loop and the other trajectories go on;
one forward pass at a time (a lock), since the CPU is shared with them anyway.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from peerstep._errors import InputError
from peerstep.verify._verifiers import TrajectoryView, Verifier, VerifierError, VerifierScore

PRM_META = "peerstep-prm.json"
"""Written beside the weights by ``peerstep prm train``: the step separator and the label that means "good"."""
GOOD_LABEL = 1
AGGREGATES = ("min", "prod", "last")


def read_meta(path: Path) -> tuple[str, int]:
    """The step separator and the "good" label a checkpoint was trained with (TRL's defaults without the file)."""
    meta_path = path / PRM_META
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {meta_path}: {exc}") from exc
    return str(meta.get("step_separator", "\n")), int(meta.get("good_label", GOOD_LABEL))


def prm_tokens(tokenizer: Any, question: str, steps: list[str], separator: str) -> tuple[list[int], list[int]]:
    """The token ids TRL's ``PRMTrainer`` trains on for this question and these steps (its own ``tokenize_row``),
    and the positions of the tokens that carry the step labels: where a PRM's step scores are read."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.prm import PRMTrainer

    row = PRMTrainer.tokenize_row({"prompt": question, "completions": steps, "labels": [True] * len(steps)},
                                  tokenizer, separator, None, None, False, True)
    ids, marks = list(row["input_ids"]), list(row["labels"])
    return ids, [i for i, m in enumerate(marks) if m != -100]


def aggregate(scores: list[float], how: str) -> float:
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    return scores[-1]


class TransformersPRM(Verifier):
    """A PRM checkpoint directory scored in-process; ``--verifier prm:DIR`` on the command line."""

    name = "prm"
    partial_ok = True

    def __init__(self, path: str | Path, *, aggregate: str = "min", device: str = "cpu") -> None:
        """Checks what is cheap now (the directory, the packages); the weights load on the first score."""
        self.path = Path(path).expanduser()
        if aggregate not in AGGREGATES:
            raise InputError(f"unknown PRM aggregate {aggregate!r}; one of: {', '.join(AGGREGATES)}")
        if not (self.path / "config.json").is_file():
            raise InputError(f"{self.path} is not a model checkpoint directory (no config.json); train one with "
                             "`peerstep prm train`")
        for module in ("torch", "transformers", "trl"):
            try:
                __import__(module)
            except ModuleNotFoundError:
                raise InputError(f"the in-process PRM needs the package {module!r}, which is not installed; "
                                 "install it with: pip install 'peerstep[prm]'") from None
        self.aggregate = aggregate
        self.device = device
        self.step_separator, self.good_label = read_meta(self.path)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModelForTokenClassification, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            model = AutoModelForTokenClassification.from_pretrained(str(self.path))
            self._model = model.to(self.device).eval()
        return self._model, self._tokenizer

    def step_scores(self, question: str, steps: list[str]) -> list[float]:
        """P(good) at each step's separator token (blocking; ``score`` runs it in a thread)."""
        import torch

        with self._lock:
            model, tokenizer = self._load()
            ids, marked = prm_tokens(tokenizer, question, steps, self.step_separator)
            limit = int(getattr(model.config, "max_position_embeddings", 0) or len(ids))
            cut = max(0, len(ids) - limit)  # too long: the latest steps are the ones scored
            ids, at = ids[cut:], [i - cut for i in marked if i >= cut]
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids], device=self.device)).logits[0]
                probs = logits[at].float().softmax(-1)[:, self.good_label]
            return [float(p) for p in probs]

    async def score(self, view: TrajectoryView) -> VerifierScore:
        steps = [s for s in (view.process_steps or view.steps) if s.strip()]
        if not steps:
            raise VerifierError("the trajectory has no steps for the PRM to score")
        try:
            scores = await asyncio.to_thread(self.step_scores, view.question, steps)
        except Exception as exc:  # a broken checkpoint or an out-of-memory: the graph logs it and goes on
            raise VerifierError(f"PRM {self.path} failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not scores:
            raise VerifierError("the PRM scored no step (the separator is not a token of its tokenizer?)")
        value = min(max(aggregate(scores, self.aggregate), 0.0), 1.0)
        shown = " ".join(f"{s:.2f}" for s in scores)
        cut = "" if len(scores) == len(steps) else f" (the first {len(steps) - len(scores)} step(s) did not fit)"
        return VerifierScore(verifier=self.name, score=value, step_scores=scores,
                             rationale=f"{self.aggregate} over {len(scores)} step scores{cut}: {shown}")
