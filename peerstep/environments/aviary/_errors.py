"""Aviary is an optional dependency: the error that says how to install it, the checks that raise it, and how
an exception from Aviary is described to the agent and the step log."""

from __future__ import annotations

import functools
import json

from peerstep._errors import PeerstepError

INSTALL_HINT = "pip install 'peerstep[aviary]'"


class AviaryNotInstalledError(PeerstepError, ImportError):
    """Aviary support was used without fhaviary installed. Also an ``ImportError``, for optional-import code."""


@functools.cache
def _require_aviary() -> None:
    """Fail with the install command instead of a bare ``ModuleNotFoundError`` deep inside an adapter."""
    try:
        import aviary.core  # noqa: F401
    except ImportError as exc:
        raise AviaryNotInstalledError(f"Aviary support needs the fhaviary package: {INSTALL_HINT}") from exc


def _require_calculator() -> None:
    _require_aviary()
    try:
        import aviary.envs.gsm8k  # noqa: F401
    except ImportError as exc:
        raise AviaryNotInstalledError(
            f"Aviary's calculator environment needs fhaviary's gsm8k extra: {INSTALL_HINT}") from exc


def describe_exception(exc: BaseException) -> str:
    """``"<ExceptionName>: <message>"``, with the cause a wrapper hides (a retry, a remote 500) appended."""
    text = f"{type(exc).__name__}: {exc}"
    last_attempt = getattr(exc, "last_attempt", None)  # tenacity.RetryError hides the real failure
    if last_attempt is not None and callable(getattr(last_attempt, "exception", None)):
        inner = last_attempt.exception()
        if inner is not None:
            text += f" (last attempt: {type(inner).__name__}: {inner})"
    response = getattr(exc, "response", None)  # httpx.HTTPStatusError from a remote Aviary server
    body = getattr(response, "text", None)
    if isinstance(body, str) and body:
        try:
            detail = json.loads(body).get("detail", body)
        except (json.JSONDecodeError, AttributeError):
            detail = body
        last_line = str(detail).strip().splitlines()[-1:] or [""]
        text += f" (server: {last_line[0][:300]})"
    return text[:1000]
