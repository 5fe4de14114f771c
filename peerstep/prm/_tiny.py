"""A CI-sized PRM base built offline: a byte-level BPE tokenizer trained on the given texts and a two-layer
Qwen2 token classifier (two labels) with random weights.

It exists to prove the pipeline (export → train → score) on a CPU in seconds; it learns nothing useful about
reasoning. On a GPU, train from a real base model instead (``--base Qwen/Qwen2.5-Math-1.5B`` or a local copy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peerstep._errors import InputError
from peerstep.prm._deps import require

SPECIAL = "<|endoftext|>"
VOCAB = 512


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB) -> Any:
    """A byte-level BPE tokenizer (every byte is a token, so no text is out of vocabulary) trained on ``texts``
    with Qwen2's own pre-tokenizer, as a ``Qwen2Tokenizer``: ``AutoTokenizer`` loads a Qwen2 model's tokenizer
    as that class, which rebuilds its pipeline, so a tokenizer of another shape would tokenise differently
    after a save and a load. No download."""
    tokenizers = require("tokenizers")
    transformers = require("transformers")
    qwen = transformers.Qwen2Tokenizer()  # an empty one: its normaliser and pre-tokenizer train the merges
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.normalizer = qwen.backend_tokenizer.normalizer
    tok.pre_tokenizer = qwen.backend_tokenizer.pre_tokenizer
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts) or [""], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return transformers.Qwen2Tokenizer(vocab=model["vocab"], merges=merges)


def init_tiny(out: str | Path, texts: Iterable[str] = (), *, hidden: int = 48, layers: int = 2,
              max_positions: int = 4096, seed: int = 0, force: bool = False) -> Path:
    """Write a tiny token-classification base model and its tokenizer to ``out``; returns ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(f"{out} exists and is not empty; pass --force to overwrite it")
    torch = require("torch")
    transformers = require("transformers")
    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None, num_labels=2,
        id2label={0: "bad", 1: "good"},
        label2id={"bad": 0, "good": 1}, tie_word_embeddings=False)
    model = transformers.Qwen2ForTokenClassification(config)
    try:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out
