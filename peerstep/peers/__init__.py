"""Peer sharing in the style of LeaP: summaries, routing by similarity, injection between rounds."""

from peerstep.peers._messages import NO_PEERS, NUDGE, comment_block
from peerstep.peers._routing import Route, Router, get_router, similarity
from peerstep.peers._share import SharingConfig, share, summarize
from peerstep.peers._switch import Outputs, outputs_around_comments, own_number, voting_answer
from peerstep.registry import ROUTERS

__all__ = ["NO_PEERS", "NUDGE", "ROUTERS", "Outputs", "Route", "Router", "SharingConfig", "comment_block",
           "get_router", "outputs_around_comments", "own_number", "share", "similarity", "summarize", "voting_answer"]
