"""One self-contained HTML page: inlined CSS and script, the view model embedded as JSON.

No request leaves the page: no CDN, no font, no image URL, and a Content-Security-Policy that forbids loading
anything (only the live page may fetch its own origin). So the file opens on an air-gapped cluster and can go in
a paper's supplement. Model output is untrusted: the JSON is escaped so no ``</script>`` in it can close the data
block, and the script writes every text with ``textContent``, never as markup.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'")


@cache
def asset(name: str) -> str:
    return resources.files("peerstep.view").joinpath(name).read_text(encoding="utf-8")


def embed_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as escapes, and the two line separators
    some parsers treat as newlines."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def page(title: str, model: dict[str, Any]) -> str:
    """The run page: the script in page.js draws ``model`` (see _model.build_model)."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{asset('page.css')}</style></head>"
            f"<body><noscript>This page draws the run with JavaScript; enable it to see the trace.</noscript>"
            f"<div id=\"app\"></div>"
            f"<script type=\"application/json\" id=\"run-data\">{embed_json(model)}</script>"
            f"<script>{asset('page.js')}</script></body></html>\n")


def static_page(title: str, body: str, script: str = "") -> str:
    """A page whose markup is built (and escaped) in Python, e.g. the eval table."""
    tail = f"<script>{script}</script>" if script else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{asset('page.css')}</style></head>"
            f"<body>{body}{tail}</body></html>\n")
