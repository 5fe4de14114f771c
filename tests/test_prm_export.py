"""PRM exports (trl-prm, math-shepherd, prm800k, openai-chat), each loaded by the library that consumes it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest

from peerstep import StepKind, StepLog
from peerstep._label import alabel
from peerstep.export._prm import STEP_TAG, export_prm
from peerstep.steplog._steps import trajectory_steps
from tests.label_script import ContinuationClient, calc, long_parent, recovers_until, submit
from tests.test_label import parent_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Three labelled runs: a wrong one (full), a right one (full), a long wrong one (binary search)."""
    runs_dir = tmp_path_factory.mktemp("runs")

    async def build() -> dict[str, str]:
        wrong = await parent_run(runs_dir)
        right = await parent_run(runs_dir, [calc("6*7"), calc("42*1"), submit("42")])
        long = await parent_run(runs_dir, long_parent(8))
        await alabel([wrong, right], ContinuationClient(), k=4, runs_dir=runs_dir)
        await alabel([long], ContinuationClient(recovers_until(5)), k=4, runs_dir=runs_dir, search="binary")
        return {"wrong": wrong, "right": right, "long": long}

    return runs_dir, asyncio.run(build())


def label_records(runs_dir: Path, run_id: str) -> tuple[list[Any], dict[str, Any]]:
    with StepLog.open(run_id, runs_dir) as log:
        records = list(log.records(trajectory_id=0))
    return trajectory_steps(records), {r.parent_id: r for r in records if r.kind == StepKind.LABEL}


def load(path: Path) -> Any:
    return datasets.load_dataset("json", data_files=str(path), split="train")


def tiny_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE tokenizer trained here on the rows (no download), as transformers wraps one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def test_trl_prm_rows_load_with_datasets_and_tokenise_with_trl(labelled: tuple[Path, dict[str, str]],
                                                                tmp_path: Path) -> None:
    runs_dir, runs = labelled
    path, count = export_prm(list(runs.values()), "trl-prm", tmp_path / "prm.jsonl", runs_dir=runs_dir)
    ds = load(path)
    assert count == ds.num_rows == 3 and set(ds.column_names) == {"prompt", "completions", "labels"}
    by_run = dict(zip(runs, ds, strict=True))
    for name in ("wrong", "right"):
        steps, labels = label_records(runs_dir, runs[name])
        assert by_run[name]["labels"] == [labels[s.reason.step_id].data["hard"] for s in steps]
        assert len(by_run[name]["completions"]) == len(steps)
    assert by_run["wrong"]["labels"] == [True, True, False, False]
    # binary search labelled steps 4, 5, 6 and the answer; the others follow from them (positive before a
    # positive label, negative after a negative one)
    assert by_run["long"]["labels"] == [True] * 5 + [False] * 4
    assert "<tool_response>\n42\n</tool_response>" in by_run["wrong"]["completions"][0]

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.prm import PRMTrainer  # TRL 1.13, the last with it (peerstep[prm] pins it)

    tokenizer = tiny_tokenizer([r["prompt"] + "\n".join(r["completions"]) for r in ds])
    # as PRMTrainer maps its train set (with its features, so the labels are not cast back to bool)
    tokenised = ds.map(PRMTrainer.tokenize_row, remove_columns=ds.features, fn_kwargs={
        "tokenizer": tokenizer, "step_separator": "\n", "max_length": None, "max_completion_length": None,
        "train_on_last_step_only": False, "is_eval": False}, features=datasets.Features({
            "labels": datasets.Sequence(datasets.Value("int64")),
            "input_ids": datasets.Sequence(datasets.Value("int64"))}))
    for row, tok in zip(ds, tokenised, strict=True):
        marked = [x for x in tok["labels"] if x != -100]
        assert marked == [int(x) for x in row["labels"]]  # one label per step, on its last token
        assert len(tok["input_ids"]) == len(tok["labels"])
        # each label sits on a step's last token: the separator ("\n") that TRL appends to every step
        ends = [i for i, x in enumerate(tok["labels"]) if x != -100]
        assert all(tokenizer.decode([tok["input_ids"][i]]).endswith("\n") for i in ends)


def test_math_shepherd_tags_and_signs(labelled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    runs_dir, runs = labelled
    path, _ = export_prm([runs["wrong"]], "math-shepherd", tmp_path / "ms.jsonl", runs_dir=runs_dir)
    row = load(path)[0]
    assert row["task"] == "peerstep" and row["input"].startswith("What is 6*7? Step 1: ")
    assert row["input"].count(STEP_TAG) == 4 and STEP_TAG not in row["label"]
    # TRL's conversion (examples/datasets/math_shepherd.py) splits on the tag and reads each step's sign
    pieces = row["input"].split(STEP_TAG)[:-1]
    signs = []
    cursor = 0
    for piece in pieces:
        cursor += len(piece)
        signs.append(row["label"][cursor])
        cursor += 1
    assert signs == ["+", "+", "-", "-"]


def test_prm800k_ratings_from_the_soft_label(labelled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    runs_dir, runs = labelled
    path, _ = export_prm([runs["wrong"], runs["right"]], "prm800k", tmp_path / "p8.jsonl", runs_dir=runs_dir)
    wrong, right = load(path)
    # values 0.75, 0.25, 0, 0: +1 (>= 0.5), 0 (below half), -1 (none), and the steps stop at the first -1
    assert [s["completions"][0]["rating"] for s in wrong["label"]["steps"]] == [1, 0, -1]
    assert wrong["label"]["finish_reason"] == "found_error" and len(wrong["question"]["pre_generated_steps"]) == 4
    assert wrong["question"]["ground_truth_answer"] == "42" and wrong["question"]["pre_generated_answer"] == "43"
    assert right["label"]["finish_reason"] == "solution"
    assert all(s["chosen_completion"] == 0 for s in right["label"]["steps"])


def test_openai_chat_keeps_right_trajectories_with_tool_calls_answered(labelled: tuple[Path, dict[str, str]],
                                                                       tmp_path: Path) -> None:
    runs_dir, runs = labelled
    path, count = export_prm(list(runs.values()), "openai-chat", tmp_path / "chat.jsonl", runs_dir=runs_dir)
    ds = load(path)
    assert count == ds.num_rows == 1  # only the run whose answer was right
    row = ds[0]
    assert {t["function"]["name"] for t in row["tools"]} == {"calculate", "submit_answer"}
    assert all(t["function"]["parameters"]["type"] == "object" for t in row["tools"])
    messages = row["messages"]
    assert messages[0] == {**messages[0], "role": "user", "content": "What is 6*7?"}  # text calls: no text prompt
    assistants = [m for m in messages if m["role"] == "assistant"]
    assert len(assistants) == 3 and all(m["weight"] in (0, 1) for m in assistants)
    calls = [c for m in assistants for c in m["tool_calls"]]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert [c["id"] for c in calls] == answered
    assert json.loads(calls[0]["function"]["arguments"]) == {"expression": "6*7"}
    # the call was written as text in the reply: it moved into tool_calls
    assert all(m["content"] is None or '"name"' not in m["content"] for m in assistants)
    with StepLog.open(runs["right"], runs_dir) as log:
        hard = [r.data["hard"] for r in log.records(kind=StepKind.LABEL)]
    assert [m["weight"] for m in assistants] == [int(h) for h in hard]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peerstep", "export", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)})


def test_cli_export_refuses_an_existing_file_unless_forced_and_unknown_formats(
        labelled: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    runs_dir, runs = labelled
    out = tmp_path / "prm.jsonl"
    first = cli(runs["wrong"], "--format", "trl-prm", "--out", str(out), "--dir", str(runs_dir))
    assert first.returncode == 0 and "wrote 1 trl-prm rows" in first.stderr
    again = cli(runs["wrong"], "--format", "trl-prm", "--out", str(out), "--dir", str(runs_dir))
    assert again.returncode == 1 and "exists; pass --force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    forced = cli(runs["wrong"], runs["right"], "--format", "trl-prm", "--out", str(out), "--dir", str(runs_dir),
                 "--force")
    assert forced.returncode == 0 and len(out.read_text().splitlines()) == 2
    unknown = cli(runs["wrong"], "--format", "prm9000", "--out", str(tmp_path / "x"), "--dir", str(runs_dir))
    assert unknown.returncode == 2 and "unknown format 'prm9000'" in unknown.stderr


def test_runs_without_labels_export_nothing_and_say_so(tmp_path: Path) -> None:
    run_id = asyncio.run(parent_run(tmp_path))
    from peerstep import InputError

    with pytest.raises(InputError, match="run `peerstep label` first"):
        export_prm([run_id], "trl-prm", tmp_path / "x.jsonl", runs_dir=tmp_path)
    with pytest.raises(InputError, match="no run 'nope'"):
        export_prm(["nope"], "prm800k", tmp_path / "y.jsonl", runs_dir=tmp_path)


def _no_nones(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


@pytest.mark.parametrize("fmt", ["trl-prm", "math-shepherd", "prm800k", "openai-chat"])
def test_hf_dataset_directory_loads_the_jsonl_rows(labelled: tuple[Path, dict[str, str]], tmp_path: Path,
                                                   fmt: str) -> None:
    runs_dir, runs = labelled
    jsonl, count = export_prm(list(runs.values()), fmt, tmp_path / "rows.jsonl", runs_dir=runs_dir)
    folder, saved = export_prm(list(runs.values()), fmt, tmp_path / "rows", runs_dir=runs_dir, hf_dataset=True)
    ds = datasets.load_from_disk(str(folder))
    expected = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert saved == count == ds.num_rows == len(expected)
    got = ds.to_list()
    if fmt == "openai-chat":  # tools travel as JSON text; a key a message lacks comes back as None (module doc)
        for row in got + expected:
            row["messages"] = _no_nones(row["messages"])
        got = [{**row, "tools": json.loads(row["tools"])} for row in got]
    assert got == expected
    if fmt == "trl-prm":  # the schema TRL's PRM trainer reads, written out, not guessed
        assert ds.features["labels"].feature == datasets.Value("bool")
        assert ds.features["completions"].feature == datasets.Value("string")


def test_cli_hf_dataset_refuses_an_existing_directory_unless_forced(labelled: tuple[Path, dict[str, str]],
                                                                    tmp_path: Path) -> None:
    runs_dir, runs = labelled
    out = tmp_path / "ds"
    first = cli(runs["wrong"], "--format", "prm800k", "--out", str(out), "--dir", str(runs_dir), "--hf-dataset")
    assert first.returncode == 0 and "wrote 1 prm800k rows to the datasets directory" in first.stderr
    again = cli(runs["wrong"], "--format", "prm800k", "--out", str(out), "--dir", str(runs_dir), "--hf-dataset")
    assert again.returncode == 1 and "exists; pass --force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    forced = cli(runs["wrong"], runs["right"], "--format", "prm800k", "--out", str(out), "--dir", str(runs_dir),
                 "--hf-dataset", "--force")
    assert forced.returncode == 0 and datasets.load_from_disk(str(out)).num_rows == 2
    as_file = cli(runs["wrong"], "--format", "prm800k", "--out", str(out), "--dir", str(runs_dir), "--force")
    assert as_file.returncode == 1 and "is a directory" in as_file.stderr
    otlp = cli(runs["wrong"], "--format", "otlp", "--hf-dataset", "--dir", str(runs_dir))
    assert otlp.returncode == 2 and "--hf-dataset writes the process-supervision formats" in otlp.stderr
