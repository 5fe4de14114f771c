"""Verifiers and answer aggregation: score trajectories, then turn N answers into one."""

from peerstep.grading import answers_equivalent
from peerstep.verify._listwise import Choice, ListwiseJudge, combine_orders, listwise_options, read_choice
from peerstep.verify._transformers_prm import TransformersPRM
from peerstep.verify._verifiers import (
    AnswerChecker,
    LLMJudge,
    PeerAgreement,
    PRMClient,
    TrajectoryView,
    Verifier,
    VerifierError,
    VerifierScore,
    verdict_score,
)
from peerstep.verify.aggregate import (
    Candidate,
    Decision,
    agreement_reached,
    backed_by,
    best_of_n,
    group_answers,
    majority_vote,
    tool_backed_vote,
    weighted_vote,
)

__all__ = ["AnswerChecker", "Candidate", "Choice", "Decision", "LLMJudge", "ListwiseJudge", "PRMClient",
           "PeerAgreement", "TrajectoryView", "TransformersPRM", "Verifier", "VerifierError", "VerifierScore",
           "agreement_reached", "answers_equivalent", "backed_by", "best_of_n", "combine_orders", "group_answers",
           "listwise_options", "majority_vote", "read_choice", "tool_backed_vote", "verdict_score",
           "weighted_vote"]
