"""The ``python`` checker: a function the user supplies, as ``"package.module:function"`` or ``"file.py:function"``.

The function name defaults to ``check``. It is resolved when the checker is built, so a typo fails at load time with
a clear message rather than as a silent 0 reward in the middle of an evaluation.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peerstep._errors import InputError
from peerstep.grading._protocol import stripped

__all__ = ["PythonChecker"]

log = logging.getLogger(__name__)


class PythonChecker:
    """A user function ``(prediction, gold) -> bool`` loaded from ``"pkg.mod:fn"`` or ``"file.py[:fn]"``.

    A relative file path is read relative to ``base_dir`` (a task file's folder), so a task file and its checker
    can travel together. The function may return a bool, or a number read as correct when it is at least 1.0
    (the convention of graded scorers such as reasoning-gym's). If it raises on some prediction, that prediction
    is wrong (the model's answer, not the user's code, is usually what is malformed) and the error is logged.
    """

    DEFAULT_FUNCTION = "check"

    def __init__(self, function: str, base_dir: str | Path | None = None) -> None:
        if not isinstance(function, str) or not function.strip():
            raise InputError("python checker: give the function as 'package.module:function' or 'file.py:function'")
        self.spec = function.strip()
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.function = self._resolve()

    def _split(self) -> tuple[str, str]:
        if self.spec.endswith(".py"):
            return self.spec, self.DEFAULT_FUNCTION
        target, sep, name = self.spec.rpartition(":")
        if not sep or not name.isidentifier():
            if self.spec.replace(".", "").replace("_", "").isalnum():
                raise InputError(f"python checker {self.spec!r}: name the function too, e.g. "
                                 f"'{self.spec}:check' (module:function)")
            raise InputError(f"python checker {self.spec!r}: expected 'package.module:function' or "
                             f"'path/to/file.py:function'")
        return target, name

    def _resolve(self) -> Callable[..., Any]:
        target, name = self._split()
        if target.endswith(".py") or "/" in target or "\\" in target:
            module = self._load_file(target)
        else:
            module = self._import(target)
        fn = getattr(module, name, None)
        if fn is None:
            public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise InputError(f"python checker {self.spec!r}: {target} has no function {name!r}"
                             + (f" (it has: {', '.join(public[:10])})" if public else ""))
        if not callable(fn):
            raise InputError(f"python checker {self.spec!r}: {name!r} in {target} is not a function")
        try:
            inspect.signature(fn).bind("prediction", "gold")
        except TypeError:
            raise InputError(f"python checker {self.spec!r}: {name} must accept two arguments "
                             f"(prediction, gold)") from None
        except ValueError:
            pass  # builtins without a signature: trust them
        return fn

    def _import(self, module_name: str) -> Any:
        if not all(part.isidentifier() for part in module_name.split(".")):
            raise InputError(f"python checker {self.spec!r}: {module_name!r} is not a module name")
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise InputError(f"python checker {self.spec!r}: no module named {exc.name or module_name!r} "
                             f"(is it installed, or on PYTHONPATH?)") from None
        except Exception as exc:  # the user's module failed while importing: say so instead of a traceback
            raise InputError(f"python checker {self.spec!r}: importing {module_name} failed: "
                             f"{type(exc).__name__}: {exc}") from None

    def _load_file(self, target: str) -> Any:
        path = Path(target).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if not path.is_file():
            raise InputError(f"python checker {self.spec!r}: no such file {path}")
        module_name = f"_peerstep_checker_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InputError(f"python checker {self.spec!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise InputError(f"python checker {self.spec!r}: running {path} failed: "
                             f"{type(exc).__name__}: {exc}") from None
        return module

    def __call__(self, prediction: str, gold: str) -> bool:
        try:
            result = self.function(prediction, gold)
        except Exception as exc:  # a malformed prediction makes a naive checker raise: that answer is wrong
            log.warning("python checker %s raised %s: %s; the answer counts as wrong",
                        self.spec, type(exc).__name__, exc)
            return False
        if isinstance(result, bool):
            return result
        if isinstance(result, int | float):
            return bool(result >= 1.0)
        log.warning("python checker %s returned %r, not a bool or number; the answer counts as wrong",
                    self.spec, result)
        return False

    def normalise(self, answer: str) -> str | None:
        return stripped(answer)

    def __repr__(self) -> str:
        return f"PythonChecker({self.spec!r})"
