"""``peerstep prm train`` and ``TransformersPRM``: a trl-prm export of scripted labelled runs trains a tiny PRM on
CPU (the loss goes down, the checkpoint saves and reloads), and the checkpoint scores runs as a verifier.

This proves the pipeline — export → TRL's PRMTrainer → a checkpoint the verifier reads at the trained separator —
not the quality of a PRM: the base is a two-layer model with random weights and the data three trajectories.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerstep import ParallelConfig, StepKind, StepLog, arun
from peerstep._errors import InputError
from peerstep._label import alabel
from peerstep.export._prm import export_prm
from peerstep.prm import init_tiny, load_rows, train_prm
from peerstep.steplog._steps import process_step_texts
from peerstep.strategies import verifier_factory
from peerstep.testing.verifier import check_verifier
from peerstep.verify import PRMClient, TrajectoryView, TransformersPRM
from peerstep.verify._transformers_prm import PRM_META
from tests._json_server import json_server
from tests.label_script import GOLD, QUESTION, ContinuationClient, calc, long_parent, recovers_until, submit
from tests.scripted import PerTrajectoryClient
from tests.test_label import parent_run

STEPS = 15
# labelling, the transformers/TRL imports and the training take 30-60 s on a shared 2-core CPU
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trl-prm export of three labelled scripted runs: wrong, right, and long-wrong (binary search)."""
    runs_dir = tmp_path_factory.mktemp("runs")

    async def build() -> list[str]:
        wrong = await parent_run(runs_dir)
        right = await parent_run(runs_dir, [calc("6*7"), calc("42*1"), submit("42")])
        long = await parent_run(runs_dir, long_parent(8))
        await alabel([wrong, right], ContinuationClient(), k=4, runs_dir=runs_dir)
        await alabel([long], ContinuationClient(recovers_until(5)), k=4, runs_dir=runs_dir, search="binary")
        return [wrong, right, long]

    runs = asyncio.run(build())
    path, rows = export_prm(runs, "trl-prm", tmp_path_factory.mktemp("export") / "prm.jsonl", runs_dir=runs_dir)
    assert rows == 3
    # the same rows as a datasets directory (`export --hf-dataset`), next to the JSONL: see hf_export
    assert export_prm(runs, "trl-prm", hf_export(path), runs_dir=runs_dir, hf_dataset=True)[1] == 3
    return path


def hf_export(jsonl: Path) -> Path:
    """Where the ``export`` fixture saved its rows with ``save_to_disk``."""
    return jsonl.parent / "prm-hf"


@pytest.fixture(scope="module")
def trained(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("base")
    rows = load_rows(export)
    init_tiny(base, [r["prompt"] + "\n" + "\n".join(r["completions"]) for r in rows], force=True)
    out = tmp_path_factory.mktemp("prm") / "ckpt"
    result = train_prm(export, base, out, steps=STEPS, lr=5e-3, batch_size=3)
    assert result.rows == 3 and len(result.losses) == STEPS
    return out


def test_training_lowers_the_loss_and_the_checkpoint_reloads(trained: Path) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    meta = json.loads((trained / PRM_META).read_text())
    losses = meta["losses"]
    assert len(losses) == STEPS
    # three rows seen again and again: the loss must fall (measured: 0.72 -> 0.41 in 15 steps at lr 5e-3)
    assert losses[-1] < 0.75 * losses[0], losses
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert meta["step_separator"] == "\n" and meta["good_label"] == 1
    model = AutoModelForTokenClassification.from_pretrained(trained)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    assert model.config.num_labels == 2 and model.config.num_hidden_layers == 2 and model.config.hidden_size <= 64
    assert tokenizer.pad_token is not None and len(tokenizer) == model.config.vocab_size


def test_cli_trains_and_refuses_bad_input(export: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from peerstep.cli import app

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, ["prm", *args], env={"COLUMNS": "400"})

    base = tmp_path / "base"
    made = cli("init-tiny", str(base), "--texts", str(export))
    assert made.exit_code == 0, made.output
    # trained from the `export --hf-dataset` directory (the fixture trains from the JSONL)
    done = cli("train", str(hf_export(export)), "--base", str(base), "--out", str(tmp_path / "ckpt"), "--steps", "2",
               "--lr", "1e-3", "--batch-size", "2")
    assert done.exit_code == 0, done.output
    assert "trained 2 steps on 3 rows" in done.stderr and (tmp_path / "ckpt" / "model.safetensors").is_file()

    again = cli("train", str(export), "--base", str(base), "--out", str(tmp_path / "ckpt"))
    assert again.exit_code == 2 and "exists" in again.stderr and again.exception is not None
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"messages": []}) + "\n")
    wrong = cli("train", str(other), "--base", str(base), "--out", str(tmp_path / "x"))
    assert wrong.exit_code == 2 and "not a trl-prm dataset" in wrong.stderr
    nobase = cli("train", str(export), "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "y"))
    assert nobase.exit_code == 2 and "cannot load the base model" in nobase.stderr
    taken = cli("init-tiny", str(base))
    assert taken.exit_code == 2 and "not empty" in taken.stderr
    for result in (again, wrong, nobase, taken):  # one line, no traceback: typer's Exit, nothing else
        assert type(result.exception).__name__ == "SystemExit" and "Traceback" not in result.output


def test_load_rows_reads_a_datasets_directory(export: Path, tmp_path: Path) -> None:
    import datasets

    ds = datasets.load_dataset("json", data_files=str(export), split="train")
    assert load_rows(hf_export(export)).to_list() == ds.to_list()  # a Dataset, as `export --hf-dataset` saves
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))  # a DatasetDict: its train split
    assert load_rows(tmp_path / "dd").num_rows == 3
    with pytest.raises(InputError, match="no dataset"):
        load_rows(tmp_path / "missing.jsonl")


async def test_transformers_prm_keeps_the_verifier_contract(trained: Path, tmp_path: Path) -> None:
    assert await check_verifier(TransformersPRM(trained)) == {}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert await check_verifier(TransformersPRM(broken), broken=True) == {}
    with pytest.raises(InputError, match=r"no config\.json"):
        TransformersPRM(tmp_path / "nowhere")
    with pytest.raises(InputError, match="unknown PRM aggregate"):
        TransformersPRM(trained, aggregate="mean")


async def test_the_verifier_reads_the_steps_where_training_put_the_labels(export: Path, trained: Path) -> None:
    """Scored through the verifier, the training rows' good steps score higher than their bad ones: it reads
    P(good) at the tokens TRL trained (a verifier reading other positions would show no such split)."""
    prm = TransformersPRM(trained)
    good, bad = [], []
    for row in load_rows(export):
        scores = prm.step_scores(row["prompt"], row["completions"])
        assert len(scores) == len(row["completions"])
        for score, label in zip(scores, row["labels"], strict=True):
            (good if label else bad).append(score)
    assert min(len(good), len(bad)) >= 3
    assert sum(good) / len(good) > sum(bad) / len(bad) + 0.1, (good, bad)


async def test_best_of_n_scored_by_the_trained_prm_end_to_end(trained: Path, tmp_path: Path) -> None:
    """``--verifier prm:DIR`` as the command line builds it: every finished trajectory gets one ``verify`` step
    from the PRM, with a score in [0, 1] aggregated (min) from one score per process step, computed on the same
    step text the trl-prm export writes."""
    scorers = verifier_factory([f"prm:{trained}"])
    client = PerTrajectoryClient({0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("48")],
                                  2: [calc("6*7"), calc("42*1"), submit("42")]})
    result = await arun(QUESTION, client, strategy="best-of-n", n=3, gold=GOLD, python=False, runs_dir=tmp_path,
                        verifiers=scorers)
    with StepLog.open(result.run_id, tmp_path) as log:
        verify = list(log.records(kind=StepKind.VERIFY))
        records = {t: list(log.records(trajectory_id=t)) for t in range(3)}
        assert log.meta()["verifiers"] == [f"prm:{trained}"]  # what `peerstep resume` scores with again
    assert sorted(r.trajectory_id for r in verify) == [0, 1, 2]
    prm = TransformersPRM(trained)
    for rec in verify:
        assert rec.data["verifier"] == "prm" and 0.0 <= rec.data["score"] <= 1.0
        texts = process_step_texts(records[rec.trajectory_id])
        assert len(texts) == len(rec.data["step_scores"]) == (3 if rec.trajectory_id == 2 else 2)
        assert "<tool_response>" in texts[0]
        expected = prm.step_scores(QUESTION, texts)
        assert rec.data["step_scores"] == pytest.approx(expected, abs=1e-5)
        assert rec.data["score"] == pytest.approx(min(expected), abs=1e-5)
        assert rec.text.startswith("min over")
    best = max(verify, key=lambda r: r.data["score"])
    assert result.answer == result.answers[best.trajectory_id]  # best-of-n took the PRM's favourite


def test_a_bad_verifier_spec_is_one_line_before_any_engine_starts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from peerstep.cli import app

    for spec, words in ((f"prm:{tmp_path}", "no config.json"), ("prm", "needs a checkpoint"),
                        ("oracle", "unknown verifier")):
        result = CliRunner().invoke(app, ["solve", "1+1?", "--strategy", "best-of-n", "--verifier", spec,
                                          "--engine", "no-such-engine"], env={"COLUMNS": "400"})
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert "engine" not in result.stderr.split("error:")[0]


@pytest.fixture()
def pooling_server(trained: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for ``vllm serve CKPT --runner pooling``: runs the checkpoint on the token ids a request sends and
    answers ``token_classify`` as vLLM documents it, one softmaxed pair per token."""
    import torch
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(trained).eval()

    def respond(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with torch.inference_mode():
            probs = model(input_ids=torch.tensor([body["input"]])).logits[0].softmax(-1).tolist()
        return 200, {"object": "list", "data": [{"index": 0, "object": "pooling", "data": probs}]}

    with json_server(respond) as served:
        yield served


async def test_a_served_checkpoint_scores_as_the_in_process_one(trained: Path, export: Path,
                                                                pooling_server: Any) -> None:
    """``--verifier prm:URL#CKPT``: PRMClient sends the ids TRL trained on and reads the separator rows, so a served
    checkpoint gives the in-process scores."""
    url, received = pooling_server
    (served,) = verifier_factory([f"prm:{url}#{trained}"])(None, None)  # type: ignore[arg-type]
    assert isinstance(served, PRMClient) and served.checkpoint == trained
    row = load_rows(export)[0]
    view = TrajectoryView(trajectory_id=0, question=row["prompt"], process_steps=row["completions"], finished=True)
    remote = await served.score(view)
    local = await TransformersPRM(trained).score(view)
    assert remote.step_scores == pytest.approx(local.step_scores, abs=1e-5) and len(remote.step_scores or []) == 4
    assert remote.score == pytest.approx(local.score, abs=1e-5)
    body = received[0]["body"]
    assert received[0]["path"] == "/v1/pooling" and body["task"] == "token_classify" and body["model"] == str(trained)
    await served.close()


async def test_leap_verify_scores_unfinished_trajectories_at_barriers(trained: Path, tmp_path: Path) -> None:
    """At a barrier the PRM scores what a trajectory has done so far (a PRM judges prefixes): partial verify steps
    with one score per step taken, then final ones."""
    client = PerTrajectoryClient({0: [calc("6*7"), calc("42+0"), submit("42")],
                                  1: [calc("6*8"), calc("48+0"), submit("48")]})
    config = ParallelConfig(n=2, max_rounds=3, round_steps=1, round_tokens=10**6, barrier_verify=True,
                            aggregate="weighted")
    result = await arun(QUESTION, client, strategy="leap+verify", n=2, parallel=config, gold=GOLD, python=False,
                        runs_dir=tmp_path, verifiers=verifier_factory([f"prm:{trained}"]))
    with StepLog.open(result.run_id, tmp_path) as log:
        verify = [r for r in log.records(kind=StepKind.VERIFY) if r.data["verifier"] == "prm"]
    partial = [r for r in verify if r.data["partial"]]
    final = [r for r in verify if not r.data["partial"]]
    assert sorted({r.trajectory_id for r in partial}) == [0, 1] and sorted(r.trajectory_id for r in final) == [0, 1]
    assert {len(r.data["step_scores"]) for r in partial} >= {1}  # the first barrier: one step each
    assert all(len(r.data["step_scores"]) == 3 for r in final)
    assert all(0.0 <= r.data["score"] <= 1.0 for r in verify)
