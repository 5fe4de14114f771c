"""The ``prm`` extra's heavy imports, in one place: a missing package is one clear error naming the extra."""

from __future__ import annotations

import os
from typing import Any

from peerstep._errors import InputError


def require(module: str) -> Any:
    """Import ``module`` (torch, transformers, trl, datasets, tokenizers) or say how to install it."""
    import importlib

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # PRMTrainer lives in trl.experimental (TRL 1.13)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise InputError(f"PRM training needs the package {(exc.name or module).split('.')[0]!r}, which is not "
                         "installed; install it with: pip install 'peerstep[prm]'") from None
