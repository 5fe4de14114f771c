"""Grading: does an answer match the gold answer, and what answer does a model reply state?

A leaf package: it imports nothing from the rest of peerstep except its errors, so environments, verifiers,
strategies and the eval runner can all grade with the same rules.
"""

from peerstep.grading._extract import stated_answer

__all__ = ["stated_answer"]
