"""Peer sharing in the style of LeaP: summaries, routing by similarity, injection between rounds."""

from peerstep.peers._messages import NO_PEERS, NUDGE, comment_block
from peerstep.peers._routing import Route, Router, get_router, similarity
from peerstep.peers._share import SharingConfig, share, summarize
from peerstep.registry import ROUTERS

__all__ = ["NO_PEERS", "NUDGE", "ROUTERS", "Route", "Router", "SharingConfig", "comment_block", "get_router",
           "share", "similarity", "summarize"]
