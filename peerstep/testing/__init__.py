"""Conformance suites shipped with peerstep, for the backends in this repository and for your own.

* ``peerstep.testing.sandbox``: any ``peerstep.tools.sandbox.Sandbox`` (behaviour, timeouts, and attacks on the
  limits: nested namespaces, multi-process memory, tmpfs/shared memory, total disk, process limits, starvation of
  other sandboxes, what a timeout leaves running).

* ``peerstep.testing.model``: ``ScriptedClient``, a scripted model behind the ``ModelClient`` interface (the
  public fake, as httpx's ``MockTransport``), and ``check_model_client``, which any client (real or fake) passes.
* ``peerstep.testing.environment``: any ``Environment`` or registered dataset (the finishing tool is offered, an
  unknown tool or bad arguments are observations and never exceptions, ``close`` is idempotent).

* ``peerstep.testing.search``: any ``SearchIndex`` built over its ``DOCUMENTS`` (ranking, paging, errors, a very
  long document); run here on the FTS5 index and on the web backend through an httpx mock transport.

* ``peerstep.testing.verifier``: any ``Verifier`` (scores in [0, 1] under its own name; ``VerifierError`` and
  nothing else when it cannot score).

Each module is imported on its own; none imports pytest unless a test runs.
"""
