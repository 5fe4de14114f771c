"""What a Ray node is asked before any episode goes to it: which of the packages an episode needs it lacks.

Shipped to the nodes by value (``_ray`` registers this module with Ray's cloudpickle), so it runs on a node that
has no peerstep at all and can say so; hence it imports nothing but the standard library.
"""

from __future__ import annotations


def missing_modules(names: list[str]) -> tuple[str, list[str]]:
    """This node's host name and the modules in ``names`` it cannot import."""
    import importlib.util
    import socket

    return socket.gethostname(), [name for name in names if importlib.util.find_spec(name) is None]
