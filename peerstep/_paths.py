"""Where peerstep keeps its files on disk: one root, ``cache_dir()``.

The root is ``$PEERSTEP_HOME`` when it is set (``~`` is expanded), else ``~/.cache/peerstep``. Below it:
``models/`` (the embedded models), ``engines/`` (running engines' records; ``$PEERSTEP_ENGINE_STATE`` moves
them), ``runs/`` (step logs; ``$PEERSTEP_RUNS`` moves them), ``search/`` (named search indexes) and
``vllm-venv/`` (the CPU vLLM install). A leaf module: it imports nothing of peerstep, so any package may use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of peerstep's cache: ``$PEERSTEP_HOME`` or ``~/.cache/peerstep``."""
    root = os.environ.get("PEERSTEP_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "peerstep"
