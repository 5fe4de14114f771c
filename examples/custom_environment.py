"""Write a small environment: async reset/step, OpenAI-format messages, a reward.

    python examples/custom_environment.py

A guessing game: the agent calls ``guess(n)`` and hears "higher"/"lower" until it finds the number.
``ToolEnvironment`` runs the tools; a subclass only says how the episode ends and what it earns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from peerstep import Endpoint, StepLog, Tool, arun
from peerstep.environments import Message, ToolEnvironment, call_arguments, observation, register_environment


@register_environment("guess-number")
class GuessNumber(ToolEnvironment):
    finish_tool = "guess"

    def __init__(self, secret: int = 37, max_guesses: int = 8) -> None:
        self.secret, self.max_guesses, self.guesses = secret, max_guesses, 0

        def guess(n: int) -> str:
            """Guess the secret number between 1 and 100. You are told whether to go higher or lower.

            Args:
                n: Your guess.
            """
            return str(n)

        super().__init__([Tool(guess)])

    async def reset(self) -> tuple[list[Message], list[Tool]]:
        self.guesses, self.done = 0, False
        prompt = "I picked a whole number from 1 to 100. Find it with the guess tool, one guess per reply."
        return [{"role": "user", "content": prompt}], list(self.tools.values())

    async def step(self, action: Message) -> tuple[list[Message], float, bool, bool]:
        messages, reward, done, truncated = await super().step(action)
        if not done and self.guesses >= self.max_guesses:
            return messages, 0.0, False, True  # out of guesses: truncated, not done
        return messages, reward, done, truncated

    async def submit(self, call: dict[str, Any]) -> tuple[Message, float]:
        args = call_arguments(call)
        n = int(args.get("n", -1)) if isinstance(args, dict) else -1
        self.guesses += 1
        if n == self.secret:
            return observation(call["id"], "guess", "Correct!"), 1.0
        self.done = False  # a wrong guess does not end the episode
        hint = "higher" if n < self.secret else "lower"
        return observation(call["id"], "guess", f"{n} is wrong; go {hint}."), 0.0


async def main(client: Any) -> None:
    env = GuessNumber.from_name("guess-number", secret=37)
    log = StepLog.create(meta={"example": "guess-number"})
    result = await arun(env, client, log=log)
    print(f"reward {result.reward} after {result.steps} model calls; log {result.log_path}")
    await client.close()


if __name__ == "__main__":
    with Endpoint() as model_client:
        asyncio.run(main(model_client))
