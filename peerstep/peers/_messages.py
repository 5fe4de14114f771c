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
NO_PEERS = "No comments from peers: every other attempt has finished. Continue."


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


def comment_block(peers: list[str]) -> str:
    if not peers:
        return NO_PEERS
    quoted = " ".join(f'Peer {i}: "{text}"' for i, text in enumerate(peers, start=1))
    return f"<comment> {quoted} </comment>\n{NUDGE}"
