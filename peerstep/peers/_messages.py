"""The text of peer sharing: how a trajectory is asked to summarise, and how peers' words reach it.

Kept in one place so that prompts can be read, changed and tested together.
"""

from __future__ import annotations

import re

SUMMARY_TRIGGER = ("Pause here. Summarize your current conclusions so far in a few sentences, including any "
                   "numbers you computed with tools and facts you found. Write it inside <summarize> and "
                   "</summarize> and do not continue solving.")
SUMMARY_OPENER = "<summarize> In short, my current conclusions are that"
NUDGE = ("Check whether any peer's conclusion differs from yours. If one does, re-check that part of your work "
         "(use a tool if it helps) before you continue; if not, continue.")
RECHECK_NUDGE = ("A peer's number is a claim, not a fact. Where a peer's conclusion differs from yours, re-run the "
                 "computation it shows (and yours) with a tool and keep what the tool prints; if nothing differs, "
                 "continue.")
NO_PEERS = "No comments from peers: every other attempt has finished. Continue."
EVIDENCE_CHARS = 600  # of code and of output each, per peer: the comment must stay short beside the conversation


def clean_summary(text: str, opener_used: bool) -> tuple[str, bool]:
    """The summary body and whether it was cut off (no closing tag); a cut summary is closed explicitly."""
    body = text
    if not opener_used:
        m = re.search(r"<summarize>(.*?)(</summarize>|\Z)", text, flags=re.DOTALL)
        body = m.group(1) if m else text
        closed = bool(m and m.group(2))
    else:
        closed = "</summarize>" in body
        body = body.split("</summarize>")[0]
    body = body.strip()
    if opener_used:
        body = "In short, my current conclusions are that " + body
    return body, not closed


def drop_last_paragraph(text: str) -> str:
    """LeaP drops a path's last, likely unfinished paragraph before asking for a summary."""
    parts = text.rstrip().split("\n\n")
    return "\n\n".join(parts[:-1]) if len(parts) > 1 else text


def evidence_text(tool: str, source: str, output: str) -> str:
    """How a peer's last computation is shown: the tool, what it ran, what it printed (each cut to
    ``EVIDENCE_CHARS``), so the reader can re-run it instead of believing the summary."""
    source, output = _cut(source.strip()), _cut(output.strip())
    if "\n" in source or tool == "python":
        return f"Its last computation ({tool}):\n```{'python' if tool == 'python' else ''}\n{source}\n```\nwhich " \
               f"printed: {output}"
    return f"Its last computation: {tool}({source}) = {output}"


def _cut(text: str) -> str:
    return text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS] + " …"


def comment_block(peers: list[str], evidence: list[str | None] | None = None) -> str:
    """The injected comment: each routed peer's summary, and with ``evidence`` its last computation (then the
    nudge asks to re-run a disagreeing claim rather than adopt it)."""
    if not peers:
        return NO_PEERS
    shown = evidence or [None] * len(peers)
    quoted = " ".join(f'Peer {i}: "{text}"' + (f"\n{extra}\n" if extra else "")
                      for i, (text, extra) in enumerate(zip(peers, shown, strict=True), start=1))
    return f"<comment> {quoted} </comment>\n{RECHECK_NUDGE if evidence is not None else NUDGE}"
