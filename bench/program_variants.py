"""Do differently worded program prompts disagree where the bare program is wrong? (issue 9, dev split only)

    .venv/bin/python bench/program_variants.py --base-url URL --model NAME --limit 20 --out /tmp/variants.jsonl

For every task of the dev split, the bare-program prompt and each variant below are asked once at temperature 0;
each reply's first ```python block runs in the sandbox and its last printed line is graded by the task's own
checker. Printed: each prompt's accuracy, and what agreement rules would score ("the bare answer when a variant
agrees, else the majority of the three"), with how often the rule changes a right bare answer into a wrong one.
This is the measurement a second-program check inside ``single`` would have to pass before it is built; it runs
on the dev seeds only (``bench/heldout.py``'s ``dev`` split), never the held-out ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

from peerstep.agent import PROGRAM_PROMPT, ModelClient, SamplingParams
from peerstep.environments import load_dataset
from peerstep.evals import first_program, last_line
from peerstep.tools.sandbox import make_sandbox

VARIANTS = {
    "bare": PROGRAM_PROMPT,
    "named": ("Solve the problem with a Python program. First assign every quantity given in the problem to a "
              "variable named after what it means, then compute the answer from those variables and print only "
              "the final answer. Reply with the program in a single ```python code block."),
    "commented": ("Read the problem carefully, then write a Python program that prints its answer. Above each line "
                  "that computes something, write a comment saying which sentence of the problem it uses. Print "
                  "only the final answer. Reply with the program in a single ```python code block."),
}
DEV = {"word-problems": 0, "gsm-symbolic": 0}  # bench/heldout.py's dev split; never the held-out seeds


async def answer(client: ModelClient, prompt: str, question: str) -> tuple[str | None, int]:
    completion = (await client.chat([{"role": "system", "content": prompt}, {"role": "user", "content": question}],
                                    sampling=SamplingParams(temperature=0.0, max_tokens=1024)))[0]
    code = first_program(completion.text)  # read and run as the bare-program baseline does
    if not code:
        return None, completion.completion_tokens
    async with make_sandbox(timeout_s=30.0) as sandbox:
        result = await sandbox.run(code)
    return last_line(result.stdout.strip()), completion.completion_tokens


def rule(bare: str | None, named: str | None, commented: str | None) -> str | None:
    """The bare answer when a variant agrees with it; else the majority of the three; else the bare answer."""
    if bare is not None and bare in (named, commented):
        return bare
    votes = Counter(a for a in (bare, named, commented) if a is not None)
    top = votes.most_common(1)
    return top[0][0] if top and top[0][1] >= 2 else bare


async def main(args: argparse.Namespace) -> None:
    client = ModelClient(args.base_url, args.model, timeout=900)
    done = {}
    if args.out.exists():
        done = {(r["set"], r["index"]): r for r in map(json.loads, args.out.read_text().splitlines()) if r}
    rows = list(done.values())
    gate = asyncio.Semaphore(args.concurrency)

    async def one(name: str, index: int) -> None:
        ds = load_dataset(name, seed=DEV[name], limit=args.limit, python=True)
        info = ds.info(index)
        async with gate:
            found = {}
            for key, prompt in VARIANTS.items():
                found[key], _ = await answer(client, prompt, info.question)
        row = {"set": name, "index": index, "answers": found,
               "correct": {k: bool(a is not None and ds.grade(index, a)) for k, a in found.items()}}
        chosen = rule(found["bare"], found["named"], found["commented"])
        row["rule_correct"] = bool(chosen is not None and ds.grade(index, chosen))
        rows.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name}#{index}: {row['correct']} rule={row['rule_correct']}", flush=True)

    await asyncio.gather(*(one(name, i) for i in range(args.limit) for name in DEV if (name, i) not in done))
    total = len(rows)
    for key in VARIANTS:
        print(f"{key:10s} {sum(r['correct'][key] for r in rows)}/{total}")
    print(f"{'rule':10s} {sum(r['rule_correct'] for r in rows)}/{total}  "
          f"gained {sum(r['rule_correct'] and not r['correct']['bare'] for r in rows)}, "
          f"lost {sum(r['correct']['bare'] and not r['rule_correct'] for r in rows)}")
    print(f"{'any':10s} {sum(any(r['correct'].values()) for r in rows)}/{total}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/variants.jsonl"))
    asyncio.run(main(parser.parse_args()))
