"""Earlier turns as the model sees them, fitted to its context window.

A session grows without bound; the model's window does not. Users of chat agents expect the old, bulky parts to
go first and to be told: tool outputs of the oldest turns are folded to a one-line placeholder, then, if that is
not enough, the oldest turns are dropped whole and a note says how many. The newest turns stay verbatim. Sizes are
estimated as in the loop's own guard (``peerstep.agent._context``), which folds within a turn.
"""

from __future__ import annotations

from typing import Any

from peerstep.agent._context import estimate, fold

PREAMBLE = ("(Earlier in this conversation. The Python session keeps its variables, functions and imports "
            "between questions.)\n")


def fit(turns: list[list[dict[str, Any]]], budget: int) -> tuple[list[dict[str, Any]], str | None]:
    """The turns' messages, flattened and fitted into ``budget`` tokens; and a note saying what was left out."""
    sizes = [len(t) for t in turns if t]
    # the loop's own folding, oldest output first, over all turns (the newest keeps its outputs unless it must not)
    folded_flat, folded = fold([m for t in turns for m in t], budget)
    turns, at = [], 0
    for size in sizes:
        turns.append(folded_flat[at:at + size])
        at += size
    dropped = 0
    while turns and estimate([m for t in turns for m in t]) > budget:
        turns.pop(0)
        dropped += 1
    flat = [m for t in turns for m in t]
    notes = []
    if folded:
        notes.append(f"{folded} old tool output{'s' if folded != 1 else ''} folded")
    if dropped:
        notes.append(f"{dropped} oldest turn{'s' if dropped != 1 else ''} dropped")
    note = None
    if notes:
        note = f"context: {' and '.join(notes)} to fit the model's context window ({budget:,} tokens for history)"
    if flat:
        first = flat[0]
        lead = PREAMBLE + (f"[{dropped} earlier turn{'s were' if dropped != 1 else ' was'} left out to fit the "
                           "context window.]\n" if dropped else "")
        flat[0] = {**first, "content": lead + str(first.get("content") or "")}
    return flat, note
