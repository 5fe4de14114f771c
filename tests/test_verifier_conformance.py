"""Every verifier in the package keeps the verifier contract (``peerstep.testing.verifier``), with its dependency
working and broken; a verifier that raises the wrong error fails the suite."""

from __future__ import annotations

from peerstep._errors import ModelServerError
from peerstep.testing.model import ScriptedClient
from peerstep.testing.verifier import VIEWS, check_verifier
from peerstep.verify import AnswerChecker, LLMJudge, PeerAgreement, PRMClient, TrajectoryView, Verifier, VerifierScore


async def test_answer_checker_and_peer_agreement_keep_the_contract() -> None:
    assert await check_verifier(AnswerChecker()) == {}
    assert await check_verifier(PeerAgreement()) == {}


async def test_llm_judge_keeps_the_contract_with_a_working_and_a_dead_model() -> None:
    verdicts = ["Yes"] * len(VIEWS)
    assert await check_verifier(LLMJudge(ScriptedClient(verdicts))) == {}
    dead = [ModelServerError("model server unreachable")] * len(VIEWS)
    assert await check_verifier(LLMJudge(ScriptedClient(dead)), broken=True) == {}


async def test_prm_client_with_no_server_raises_verifier_error_only() -> None:
    assert await check_verifier(PRMClient("http://127.0.0.1:9/v1", model="prm"), broken=True) == {}


class Sloppy(Verifier):
    name = "sloppy"

    async def score(self, view: TrajectoryView) -> VerifierScore:
        if view.answer is None:
            raise KeyError("answer")
        return VerifierScore(verifier="other", score=1.0)


async def test_the_suite_fails_a_sloppy_verifier() -> None:
    failures = await check_verifier(Sloppy())
    assert "raised KeyError" in failures["no_answer"] and "names verifier" in failures["answered"]
