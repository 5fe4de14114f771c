"""Send runs to an OTLP/HTTP traces endpoint (Phoenix, Langfuse, MLflow, Weave, any OpenTelemetry collector).

``export_otlp`` is ``peerstep export --format otlp``: every run is read from its step log and sent as one trace; a
failed send is an :class:`ExportError` naming the endpoint and the reason. ``trace_to`` is the live ``--trace-to``
of ``solve``/``run``/``eval``/``chat``: it registers a hook with the runner, which calls it when each run ends
(paused, failed or done), so every run's whole trace reaches the server once the run is over, in a thread off the
event loop. A server that is down then costs a warning line, never the run.

The SDK's exporter reports a failed send by logging it and returning FAILURE; its log lines are caught here and
become the error's text, so a dead endpoint is one line, not an SDK traceback.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from peerstep._errors import InputError, PeerstepError

INSTALL_HINT = "OpenTelemetry export needs the otel extra: pip install 'peerstep[otel]'"
TIMEOUT_S = 5.0  # per request; the SDK retries a refused connection only within this deadline


class ExportError(PeerstepError):
    """The traces endpoint did not take the spans."""


def _require_sdk() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise PeerstepError(f"{INSTALL_HINT} ({exc.name} is missing)") from exc


class _Captured(logging.Handler):
    """Keeps the SDK's log lines about one send, to report them as the error (and not print them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(record.getMessage().splitlines()[0][:300])


@contextlib.contextmanager
def _quiet_sdk() -> Iterator[_Captured]:
    logger = logging.getLogger("opentelemetry")
    handler, propagate = _Captured(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def check_endpoint(endpoint: str | None) -> str:
    """The endpoint, or an :class:`InputError` when there is none or it is not an http(s) URL."""
    if not endpoint:
        raise InputError("--format otlp needs --endpoint URL, e.g. http://127.0.0.1:6006/v1/traces (Phoenix)")
    if not endpoint.startswith(("http://", "https://")):
        raise InputError(f"--endpoint must be an http(s) URL of an OTLP/HTTP traces endpoint, got {endpoint!r}")
    return endpoint


def send(spans: Sequence[Any], endpoint: str, *, headers: dict[str, str] | None = None,
         timeout: float = TIMEOUT_S) -> None:
    """Send ``spans`` to ``endpoint`` in one request; an :class:`ExportError` when the server does not take them.
    Headers come from ``headers`` or, as the SDK reads them, ``OTEL_EXPORTER_OTLP_HEADERS`` (MLflow's
    ``x-mlflow-experiment-id``, an API key)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=timeout, headers=headers)
    try:
        deliver(spans, exporter, where=f"the OTLP endpoint {endpoint}")
    finally:
        with contextlib.suppress(Exception):
            exporter.shutdown()


def deliver(spans: Sequence[Any], exporter: Any, *, where: str = "the span exporter") -> None:
    """Hand ``spans`` to an SDK ``SpanExporter``; its FAILURE (and the log line saying why) becomes an
    :class:`ExportError`."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    if not spans:
        return
    with _quiet_sdk() as captured:
        result = exporter.export(list(spans))
    if result != SpanExportResult.SUCCESS:
        raise ExportError(f"{where} did not take the spans: {_reason(captured.lines)}")


def _reason(lines: list[str]) -> str:
    """The cause among the SDK's log lines: the OS error of a dead server ("Connection refused"), else the first
    specific line (an HTTP status), not its closing "Failed to export ... max retries" summary."""
    for line in lines:
        found = re.search(r"\[Errno -?\d+\] ([^\"')]+)", line)
        if found:
            return found.group(1).strip()
    specific = [line for line in lines if "due to timeout, max retries or shutdown" not in line]
    return (specific or lines or ["no reason given"])[0]


def spans_of(run_id: str, directory: Path | None = None) -> list[Any]:
    """The spans of one logged run (a missing run is an :class:`InputError`)."""
    from peerstep.export._spans import run_spans
    from peerstep.steplog import StepLog, StepLogError

    try:
        log = StepLog.open(run_id, directory)
    except StepLogError as exc:
        raise InputError(str(exc)) from exc
    with log:
        return run_spans(log.run_id, log.meta(), list(log.records()))


def export_otlp(run_ids: list[str], endpoint: str | None, directory: Path | None = None,
                headers: dict[str, str] | None = None) -> dict[str, int]:
    """Send each run as one trace to ``endpoint``; returns ``{run_id: spans sent}``. Every run is read before
    anything is sent, so a bad id fails without a partial export."""
    _require_sdk()
    endpoint = check_endpoint(endpoint)
    batches = {run_id: spans_of(run_id, directory) for run_id in run_ids}
    sent: dict[str, int] = {}
    for run_id, spans in batches.items():
        send(spans, endpoint, headers=headers)
        sent[run_id] = len(spans)
    return sent


def check_tracing(endpoint: str) -> str:
    """The endpoint, once the SDK is there and it is an http(s) URL (else a :class:`PeerstepError`)."""
    _require_sdk()
    return check_endpoint(endpoint)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def trace_to(endpoint: str | None, *, warn: Callable[[str], None] = _warn) -> Iterator[None]:
    """While inside, every run the runner finishes is sent to ``endpoint`` as one trace (nothing when None).

    Checked up front (the URL, the SDK), so a typo fails before a run starts; a send that fails later is a warning
    through ``warn`` and the run goes on as if nothing happened.
    """
    if endpoint is None:
        yield
        return
    url = check_tracing(endpoint)
    from peerstep._runner import after_run

    def hook(path: Path, run_id: str) -> None:
        try:
            send(spans_of(run_id, path.parent), url)
        except Exception as exc:  # the run is done and logged; its trace is a copy that can be sent again
            warn(f"--trace-to: run {run_id} was not sent ({exc}); `peerstep export {run_id} --endpoint {url}` "
                 "sends it later")

    with after_run(hook):
        yield
