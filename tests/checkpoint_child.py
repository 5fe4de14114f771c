"""A leap run on a scripted model that SIGKILLs its own process mid-node, for the resume tests.

``python -m tests.checkpoint_child RUNS_DIR`` starts a run of 3 trajectories and kills itself (SIGKILL: nothing
runs after it, no handler, no flush) right after trajectory 2 logs its second model reply, i.e. inside a ``reason``
node, after the first barrier, so the step it just wrote is one its checkpoint does not know about.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peerstep import AgentConfig, StepKind, StepRecord, arun
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.testing.model import ScriptedClient


def calc(expr: str) -> str:
    return f'{{"name": "calculate", "arguments": {{"expression": "{expr}"}}}}'


def submit(answer: str) -> str:
    return f'{{"name": "submit_answer", "arguments": {{"answer": "{answer}"}}}}'


# each trajectory's replies by position: the k-th reply is the one made with k assistant messages already in the
# conversation, so a resumed run gets exactly the reply it would have got
SCRIPTS = {0: [calc("6*7"), calc("42+0"), submit("42")],
           1: [calc("6*8"), calc("6*7"), submit("42")],
           2: [calc("5*8"), calc("6*7"), calc("40+2"), submit("42")]}


class ConversationClient(ScriptedClient):
    """Replies by trajectory (its seed) and position in the conversation; summaries by trajectory."""

    def __init__(self) -> None:
        super().__init__([])

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: Any = None, **kwargs: Any) -> Any:
        tid = sampling.seed if sampling is not None and sampling.seed is not None else 0
        last = messages[-1]
        if (last["role"] == "user" and "Summarize your current conclusions" in (last["content"] or "")) or (
                last["role"] == "assistant" and (last["content"] or "").startswith("<summarize>")):
            self.replies = [f"<summarize>trajectory {tid} has {len(messages)} messages</summarize>"]
        else:
            k = sum(1 for m in messages if m["role"] == "assistant")
            self.replies = [SCRIPTS[tid][k]]
        return await super().chat(messages, sampling=sampling, **kwargs)


CONFIG = ParallelConfig(n=3, max_rounds=4, round_steps=1, sharing=SharingConfig())
AGENT = AgentConfig()


def main(runs_dir: Path) -> None:
    reasons: dict[int, int] = {}

    def kill_mid_node(rec: StepRecord) -> None:
        if rec.kind == StepKind.REASON:
            reasons[rec.trajectory_id] = reasons.get(rec.trajectory_id, 0) + 1
            if rec.trajectory_id == 2 and reasons[2] == 2:
                print(rec.run_id, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(arun("What is 6*7?", ConversationClient(), strategy="leap", parallel=CONFIG, agent=AGENT,
                     gold="42", python=False, runs_dir=runs_dir, listeners=[kill_mid_node]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
