"""Convert an embedded GGUF model to a Hugging Face directory that vLLM can load.

vLLM cannot load these GGUF files directly (it tries to read the file as a JSON config),
so the engine converts once and caches the result. This file runs as a script under the
vLLM environment's Python (which has torch and transformers), not under peerstep's own,
so it imports nothing from peerstep:

    VLLM_PYTHON convert_gguf.py MODEL.gguf OUT_DIR

The output is written to ``OUT_DIR.partial`` and renamed when complete, so a killed
conversion is never mistaken for a finished one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True),
    )
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: convert_gguf.py MODEL.gguf OUT_DIR")
    convert(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
    print(f"converted {sys.argv[1]} -> {sys.argv[2]}")
