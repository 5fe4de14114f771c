"""The bare model, with no framework: the rows every strategy table must carry.

``bare-cot``
    One request: the question and "think step by step, then give the final answer as \\boxed{...}". No
    tools, no loop. The answer is the stated final answer (``grading.stated_answer``), else the reply's
    last number (``grading.last_number_text``).
``bare-program``
    One request: "write one Python program that prints the answer". Its first ```python block runs once
    in the sandbox; the last line it prints is the answer. No second chance, no loop.

Both run at temperature 0 with the same model, on the same tasks, graded by the same task checker as
the strategies, and log a run like any other (a REASON, for the program a TOOL_CALL and OBSERVATION,
then FINAL), so their tokens and answers can be audited the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

from peerstep.agent import ModelClient, SamplingParams
from peerstep.agent._prompts import PROGRAM_PROMPT  # the agent opens with the same words
from peerstep.client._parsing import parse_tool_calls
from peerstep.environments import EnvironmentDataset
from peerstep.evals._report import EpisodeOutcome
from peerstep.grading import last_number_text, stated_answer
from peerstep.steplog import StepKind, StepLog, ToolInfo, Usage

BASELINES = ("bare-cot", "bare-program")

COT_PROMPT = ("Solve the problem. Think step by step, then give the final answer on the last line as "
              "\\boxed{answer}.")


def first_program(text: str) -> str | None:
    """The code of a reply's first python call (a ```python block, as the program prompt asks), if any."""
    calls = [c for c in parse_tool_calls(text, None, ["python"]).calls if c.name == "python"]
    code = calls[0].arguments.get("code") if calls and isinstance(calls[0].arguments, dict) else None
    return str(code) if code else None


def last_line(output: str) -> str | None:
    """The bare program's answer: the last non-empty line it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else None


async def run_baseline(dataset: EnvironmentDataset, index: int, baseline: str, client: ModelClient, *,
                       runs_dir: Path | None = None, max_tokens: int = 1024) -> EpisodeOutcome:
    """One task answered by the bare model; graded with the dataset's own checker (``dataset.grade``)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of: {', '.join(BASELINES)}")
    info = dataset.info(index)
    started = time.perf_counter()
    prompt = COT_PROMPT if baseline == "bare-cot" else PROGRAM_PROMPT
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    log = StepLog.create(directory=runs_dir, meta={"dataset": dataset.name, "task_id": info.task_id,
                                                   "question": info.question[:2000], "strategy": baseline, "n": 1,
                                                   "model": client.model, "gold": info.gold})
    answer: str | None = None
    error: str | None = None
    tool_calls = 0
    try:
        start = log.log(StepKind.RUN_START, text=info.question, data={"system_prompt": prompt, "tools": []})
        completion = (await client.chat([{"role": "system", "content": prompt},
                                         {"role": "user", "content": info.question}], sampling=sampling))[0]
        reason = log.log(StepKind.REASON, parent_id=start.step_id, text=completion.text,
                         finish_reason=completion.finish_reason, model=completion.model or client.model,
                         usage=Usage(prompt_tokens=completion.prompt_tokens,
                                     completion_tokens=completion.completion_tokens))
        parent = reason.step_id
        if baseline == "bare-cot":
            answer = stated_answer(completion.text) or last_number_text(completion.text)
        else:
            if code := first_program(completion.text):
                from peerstep.tools.sandbox import make_sandbox

                tool_calls = 1
                call = log.log(StepKind.TOOL_CALL, parent_id=parent, tool=ToolInfo(
                    name="python", arguments={"code": code}, source="code_block"))
                async with make_sandbox(timeout_s=30.0) as sandbox:
                    result = await sandbox.run(code)
                output = result.stdout.strip()
                log.log(StepKind.OBSERVATION, parent_id=call.step_id, text=result.to_observation(),
                        tool=ToolInfo(name="python", output=output, ok=result.ok, latency_s=result.duration_s,
                                      timed_out=result.timed_out))
                answer = last_line(output)
        reward = None if info.gold is None else float(dataset.grade(index, answer))
        log.log(StepKind.FINAL, parent_id=parent, text=answer, reward=reward, data={"gold": info.gold})
    except Exception as exc:  # a failed episode is an outcome, and its steps so far stay in the log
        error = f"{type(exc).__name__}: {exc}"
        log.log(StepKind.ERROR, text=error, data={"error": type(exc).__name__, "stage": "baseline"})
    finally:
        log.log(StepKind.RUN_END, text=answer, data={"strategy": baseline, "error": error})
        log.set_meta({"status": "error" if error else "done", "answer": answer})
        log.close()
    correct = answer is not None and dataset.grade(index, answer)
    return EpisodeOutcome(task_id=info.task_id, index=index, strategy=baseline, n=1, answer=answer, gold=info.gold,
                          correct=bool(correct), tokens=client.completion_tokens, tool_calls=tool_calls,
                          seconds=round(time.perf_counter() - started, 2), run_id=log.run_id, error=error, steps=1)
