"""Who hears whom: routers pick, for each trajectory, the peer summaries it receives.

Similarity is the normalised Levenshtein similarity of two summaries (LeaP's choice), from
``rapidfuzz``. A router is any function with the ``Router`` signature, so a new policy is a
function, not a change to library code. The built-ins follow the paper:

- ``dispersed`` (default): the k least similar peers — a wrong path most needs dissent;
- ``clustered``: the k most similar;
- ``hybrid``: floor(k/2) least similar plus the rest most similar;
- ``random``: k peers at random (seeded);
- ``all``: every peer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from rapidfuzz.distance import Levenshtein

Route = list[tuple[int, float]]
"""Chosen peers as (trajectory id, similarity to the receiver), in the order they are shown."""
Router = Callable[[int, Mapping[int, str], int, random.Random], Route]


def similarity(a: str, b: str) -> float:
    return float(Levenshtein.normalized_similarity(a, b))


def _ranked(me: int, summaries: Mapping[int, str]) -> list[tuple[int, float]]:
    """Peers by increasing similarity (ties by id, for determinism)."""
    mine = summaries[me]
    sims = [(tid, similarity(mine, text)) for tid, text in summaries.items() if tid != me]
    return sorted(sims, key=lambda p: (p[1], p[0]))


def dispersed(me: int, summaries: Mapping[int, str], k: int, rng: random.Random) -> Route:
    return _ranked(me, summaries)[:k]


def clustered(me: int, summaries: Mapping[int, str], k: int, rng: random.Random) -> Route:
    return list(reversed(_ranked(me, summaries)))[:k]


def hybrid(me: int, summaries: Mapping[int, str], k: int, rng: random.Random) -> Route:
    ranked = _ranked(me, summaries)
    low = ranked[: k // 2]
    high = [p for p in reversed(ranked) if p not in low][: k - len(low)]
    return low + high


def random_peers(me: int, summaries: Mapping[int, str], k: int, rng: random.Random) -> Route:
    ranked = _ranked(me, summaries)
    return rng.sample(ranked, min(k, len(ranked)))


def all_peers(me: int, summaries: Mapping[int, str], k: int, rng: random.Random) -> Route:
    return sorted(_ranked(me, summaries), key=lambda p: p[0])


def get_router(router: str | Router) -> Router:
    """A router by name (``peerstep.registry.ROUTERS``), or the function itself."""
    if callable(router):
        return router
    from peerstep.registry import ROUTERS

    found: Router = ROUTERS.get(router)
    return found


def router_name(router: str | Router) -> str:
    return router if isinstance(router, str) else f"{router.__module__}:{getattr(router, '__qualname__', router)}"
