"""The explicitly insecure backend: the shared IPython kernel (``_kernel``) in a plain host subprocess."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ._base import ExecResult
from ._host import set_rlimits
from ._kernel import KERNEL_LAUNCHER, KernelSandbox

log = logging.getLogger(__name__)


class LocalUnsafeSandbox(KernelSandbox):
    """An ipykernel in a plain subprocess: NOT isolated. For trusted code and debugging only.

    It can read and write every file the host user can, open network connections and leave processes behind
    (anything that leaves the kernel's process group). It warns on every run so nobody uses it by accident.
    """

    isolated: ClassVar[bool] = False
    name: ClassVar[str] = "local-unsafe"

    def _command(self, conn_file: Path) -> list[str]:
        return [sys.executable, "-Xfrozen_modules=off", "-c", KERNEL_LAUNCHER, str(conn_file),
                str(self.limits.max_output_bytes + 1)]  # fmt: skip

    def _spawn_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")}
        assert self._root is not None
        env.update({"HOME": str(self.workdir), "PYDEVD_DISABLE_FILE_VALIDATION": "1", "JUPYTER_PLATFORM_DIRS": "1"})
        # keep IPython's and Jupyter's own files out of the working directory that ``reset`` must leave empty
        env.update({"IPYTHONDIR": str(self._root / "ipython"), "JUPYTER_RUNTIME_DIR": str(self._root / "ipython")})
        limits = self.limits
        preexec: Callable[[], None] = lambda: set_rlimits(limits, processes=False)  # noqa: E731
        return {"cwd": str(self.workdir), "env": env, "start_new_session": True, "preexec_fn": preexec}

    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        msg = "LocalUnsafeSandbox is NOT isolated: the code runs with the host user's rights (files, network)."
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        log.warning(msg)
        return await super().run(code, timeout)
