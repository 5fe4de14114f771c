"""A conformance suite for verifiers: what the parallel graph relies on when it scores trajectories.

    from peerstep.testing.verifier import check_verifier
    failures = await check_verifier(MyVerifier())   # name -> message; {} when all pass

A verifier scores in [0, 1] with its own name; it judges a finished trajectory with an answer, one with
no answer, one with no steps, and (when ``partial_ok``) an unfinished one; when it cannot score (a dead
server, an unreadable verdict) it raises ``VerifierError`` and nothing else, because the graph turns that
into an ERROR step and goes on, while any other exception would retire the trajectory being scored.
Run it with the verifier's dependencies working, and separately with them broken (``broken=True``:
then every view must raise ``VerifierError``).
"""

from __future__ import annotations

from peerstep.verify import TrajectoryView, Verifier, VerifierError

VIEWS: dict[str, TrajectoryView] = {
    "answered": TrajectoryView(trajectory_id=0, question="What is 6 * 7?", answer="42", gold="42",
                               steps=["6 * 7 = 42", "[result] 42"], peer_answers=["42", "41"], finished=True),
    "wrong": TrajectoryView(trajectory_id=1, question="What is 6 * 7?", answer="41", gold="42",
                            steps=["6 * 7 = 41"], peer_answers=["42"], finished=True),
    "no_answer": TrajectoryView(trajectory_id=2, question="What is 6 * 7?", answer=None, gold="42",
                                steps=["Let me think."], finished=True),
    "no_steps": TrajectoryView(trajectory_id=3, question="What is 6 * 7?", answer="42", finished=True),
    "unfinished": TrajectoryView(trajectory_id=4, question="What is 6 * 7?", steps=["First, 6 * 7"],
                                 finished=False),
}


async def check_verifier(verifier: Verifier, *, broken: bool = False) -> dict[str, str]:
    """Score every view in ``VIEWS`` (the unfinished one only when ``partial_ok``); name -> failure."""
    failures: dict[str, str] = {}
    for name, view in VIEWS.items():
        if name == "unfinished" and not verifier.partial_ok:
            continue
        try:
            result = await verifier.score(view)
        except VerifierError as exc:
            if not broken and name == "answered":
                failures[name] = f"could not score a plain answered trajectory: {exc}"
            continue
        except Exception as exc:  # anything but VerifierError breaks the graph's contract
            failures[name] = f"raised {type(exc).__name__} instead of VerifierError: {exc}"
            continue
        if broken:
            failures[name] = "scored although its dependency is broken (it must raise VerifierError)"
        elif not 0.0 <= result.score <= 1.0:
            failures[name] = f"score {result.score} is outside [0, 1]"
        elif result.verifier != verifier.name:
            failures[name] = f"the score names verifier {result.verifier!r}, not {verifier.name!r}"
    return failures
