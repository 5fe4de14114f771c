# %% [markdown]
# # A peerstep session with human approval, notebook style
#
# Each `# %%` block is a notebook cell (VS Code, Jupyter with jupytext); the file also runs as a script:
#
#     python examples/session_approval.py [--base-url http://127.0.0.1:8000/v1]
#
# Without `--base-url` the embedded engine starts once for the whole session. The approval policy asks about Python
# that imports `os` or `subprocess` or writes files, and lets other code run; the "person" here is a function that
# rejects file-system access with a reason the model sees, and approves the rest. In a notebook, answer the
# `ApprovalEvent`s yourself instead (`event.approve()`, `event.reject("why")`, `event.edit({...})`, `event.end()`).

# %%
from __future__ import annotations

import argparse
import asyncio

from peerstep import ApprovalDecision, ApprovalPolicy, ApprovalRequest, Session
from peerstep.session import AnswerEvent, ApprovalEvent, NoticeEvent, StepEvent, TokenEvent
from peerstep.steplog import StepKind

POLICY = ApprovalPolicy.model_validate({
    "default": "auto",
    "rules": [
        {"tool": "python", "action": "ask", "imports": ["os", "subprocess", "shutil"]},
        {"tool": "python", "action": "ask", "writes_files": True},
    ],
})


# %%
def careful_person(request: ApprovalRequest) -> ApprovalDecision:
    """Stands in for a person: no file-system access, anything else may run."""
    print(f"\n[approval] trajectory {request.trajectory_id} wants {request.tool}: {request.rule}")
    print(request.arguments)
    return ApprovalDecision(action="reject", reason="no file-system access in this session; compute it instead",
                            by="careful_person")


# %%
async def main(base_url: str | None) -> None:
    async with Session(base_url=base_url, approve=POLICY) as session:
        print(f"session {session.id}")
        questions = [
            "Use Python to define a list `primes` of the primes below 200, and tell me how many there are.",
            "List the files in the current directory with Python's os module.",
            "Using the `primes` list you already have, what is the sum of its last five elements?",
        ]
        for question in questions:
            print(f"\n>>> {question}")
            async for event in session.stream(question):
                if isinstance(event, TokenEvent):
                    print(event.text, end="", flush=True)
                elif isinstance(event, StepEvent) and event.record.kind == StepKind.OBSERVATION:
                    print(f"\n    ← {(event.record.text or '')[:200]}")
                elif isinstance(event, ApprovalEvent):
                    event.decide(careful_person(event.request))
                elif isinstance(event, NoticeEvent):
                    print(f"\n[note] {event.text}")
                elif isinstance(event, AnswerEvent):
                    print(f"\n=== turn {event.turn.index}: {event.turn.status}, answer {event.turn.answer!r}")
        print(f"\nresume later with: peerstep chat --resume {session.id}")


# %%
if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A session with approval")
    parser.add_argument("--base-url")
    asyncio.run(main(parser.parse_args().base_url))
