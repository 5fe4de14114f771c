"""``train_prm``: a token-classification PRM trained with TRL's ``PRMTrainer`` on a trl-prm export.

TRL tokenises each row as the question, then every step followed by the step separator, and puts the step's
label on its last token (the separator); the model learns P(good) there. peerstep trains with the separator its
export documents (``peerstep.steplog._steps.STEP_SEPARATOR``) and writes it, with the label that means "good",
to ``peerstep-prm.json`` beside the weights, so the verifier that loads the checkpoint reads each step's score
at the same token it was trained on.

A run on the tiny base (``init_tiny``) proves the pipeline — the rows tokenise, the loss goes down, the
checkpoint saves and loads and scores runs — not the quality of the PRM: that takes a real base model, a GPU
and thousands of labelled trajectories.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peerstep._errors import InputError
from peerstep.prm._deps import require
from peerstep.steplog._steps import STEP_SEPARATOR
from peerstep.verify._transformers_prm import GOOD_LABEL, PRM_META

COLUMNS = {"prompt", "completions", "labels"}


@dataclass
class TrainResult:
    """Where the checkpoint went, how many rows it saw, and the training loss at each logged step."""

    out: Path
    rows: int
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def load_rows(path: str | Path) -> Any:
    """A trl-prm dataset: the JSON-lines file ``peerstep export --format trl-prm`` writes, or a ``datasets``
    directory (``save_to_disk``; its ``train`` split when it holds several)."""
    datasets = require("datasets")
    path = Path(path)
    if not path.exists():
        raise InputError(f"no dataset at {path}")
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if "train" not in ds:
                    raise InputError(f"{path} holds splits {', '.join(ds)}, none called 'train'")
                ds = ds["train"]
        else:
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
    except InputError:
        raise
    except Exception as exc:  # datasets raises many types for an unreadable file; each is one line here
        raise InputError(f"cannot read {path} as a dataset: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
            from exc
    missing = COLUMNS - set(ds.column_names)
    if missing:
        raise InputError(f"{path} is not a trl-prm dataset: no column(s) {', '.join(sorted(missing))} (export it "
                         "with `peerstep export RUN --format trl-prm --out FILE`)")
    if ds.num_rows == 0:
        raise InputError(f"{path} has no rows")
    return ds


def train_prm(dataset: str | Path, base: str | Path, out: str | Path, *, steps: int = 100, lr: float = 1e-5,
              batch_size: int = 4, max_length: int = 2048, seed: int = 0, force: bool = False) -> TrainResult:
    """Train ``base`` (a model directory or hub id with a tokenizer) as a 2-label token classifier on the trl-prm
    rows of ``dataset`` for ``steps`` optimizer steps; save it to ``out``. On CPU unless a GPU is there."""
    out = Path(out)
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise InputError("--steps and --batch-size must be at least 1 and --lr positive")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise InputError(f"{out} exists and is not empty; pass --force to overwrite it")
        shutil.rmtree(out)
    rows = load_rows(dataset)
    torch = require("torch")
    transformers = require("transformers")
    prm = require("trl.experimental.prm")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(base))
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            str(base), num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the base model {base}: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token is None:  # the collator pads batches
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    gpu = torch.cuda.is_available()
    args = prm.PRMConfig(
        output_dir=str(out), max_steps=steps, learning_rate=lr, per_device_train_batch_size=batch_size,
        logging_steps=1, save_strategy="no", report_to="none", seed=seed, max_length=max_length,
        step_separator=STEP_SEPARATOR, bf16=gpu and torch.cuda.is_bf16_supported(), fp16=False,
        gradient_checkpointing=False, use_cpu=not gpu, disable_tqdm=True, dataloader_num_workers=0)
    trainer = prm.PRMTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    (out / PRM_META).write_text(json.dumps({
        "format": "trl-prm", "step_separator": STEP_SEPARATOR, "good_label": GOOD_LABEL, "base": str(base),
        "rows": rows.num_rows, "steps": steps, "learning_rate": lr, "max_length": max_length, "losses": losses,
        "seconds": round(seconds, 2), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
    return TrainResult(out=out, rows=rows.num_rows, steps=steps, losses=losses, seconds=seconds)
