"""See a run: one self-contained HTML page per run (no network, no CDN), an eval's table of episodes, and a live
page served while a run is still going.

``render_run`` and ``render_eval`` write files; ``serve`` returns a running :class:`ViewServer`. The page shows
trajectories as columns, rounds and barriers as bands, peer injections as links from the source's summary,
verifier scores and step labels as badges, pruned and failed trajectories greyed, and the vote.
"""

from peerstep.view._model import build_model
from peerstep.view._render import render_eval, render_run
from peerstep.view._serve import ViewServer, serve

__all__ = ["ViewServer", "build_model", "render_eval", "render_run", "serve"]
