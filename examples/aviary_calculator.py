"""Run peerstep on Aviary's calculator environment, in process or over Aviary's HTTP task server.

    pip install 'peerstep[aviary]'
    python examples/aviary_calculator.py            # Aviary's CalculatorEnv in this process
    python examples/aviary_calculator.py --http     # the same tasks behind Aviary's TaskDatasetServer on 127.0.0.1
    python examples/aviary_calculator.py --majority # 4 trajectories, majority vote
    python examples/aviary_calculator.py --limit 1  # only the first task

The model is peerstep's embedded engine unless ``PEERSTEP_BASE_URL`` (and ``PEERSTEP_MODEL``) name a
server. The tasks are a few arithmetic problems shipped with peerstep (``CALCULATOR_ROWS``), because
Aviary's GSM8K dataset downloads its rows at creation time; with network access, use
``AviaryDataset(TaskDataset.from_name("gsm8k", split="test"))`` instead. Each episode's steps go to
a step log; ``peerstep show RUN_ID`` prints one.
"""

from __future__ import annotations

import argparse
import asyncio

from peerstep import Endpoint, ModelClient, StepLog, arun
from peerstep.environments import EnvironmentDataset
from peerstep.environments.aviary import AviaryDataset, AviaryServer, aviary_calculator, calculator_task_dataset


async def solve_all(dataset: EnvironmentDataset, client: ModelClient, majority: bool, limit: int | None) -> None:
    for index in range(len(dataset) if limit is None else min(limit, len(dataset))):
        info = dataset.info(index)
        log = StepLog.create(meta={"example": "aviary-calculator", "task_id": info.task_id})
        if majority:
            result = await arun(dataset.factory(index), client, strategy="majority", n=4, log=log)
            answer, reward = result.answer, None
        else:
            episode = await arun(dataset.make(index), client, log=log)
            answer, reward = episode.answer, episode.reward
        print(f"{info.task_id}: answered {answer!r}, gold {info.gold}, reward {reward}, run {log.run_id}")
        log.close()


async def main(client: ModelClient, http: bool, majority: bool, limit: int | None) -> None:
    local = aviary_calculator()
    try:
        if not http:
            await solve_all(local, client, majority, limit)
            return
        infos = [local.info(i) for i in range(len(local))]  # gold answers, for the report only
        with AviaryServer(calculator_task_dataset()) as server:  # binds 127.0.0.1 on a free port
            print(f"Aviary task server on {server.url}")
            await solve_all(AviaryDataset.remote(server.url, infos=infos), client, majority, limit)
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="go through Aviary's TaskDatasetServer/Client")
    parser.add_argument("--majority", action="store_true", help="4 trajectories per task, majority vote")
    parser.add_argument("--limit", type=int, default=None, help="run only the first K tasks")
    args = parser.parse_args()
    with Endpoint() as model_client:
        asyncio.run(main(model_client, args.http, args.majority, args.limit))
