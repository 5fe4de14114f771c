"""Conformance suites shipped with peerstep, for the backends in this repository and for your own.

* ``peerstep.testing.sandbox``: any ``peerstep.tools.sandbox.Sandbox`` (behaviour, timeouts, and attacks on the
  limits: nested namespaces, multi-process memory, tmpfs/shared memory, total disk, process limits, starvation of
  other sandboxes, what a timeout leaves running).

Each module is imported on its own; none imports pytest unless a test runs.
"""
