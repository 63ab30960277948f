"""Scoring and GLUE submission files (pkd/evaluate.py)."""
import numpy as np
import pytest
from transformers import DataCollatorWithPadding

from pkd.data import get_task
from pkd.models import build_teacher, load_tokenizer

TASK = get_task("builtin_sentiment")


def test_evaluate_shows_progress(tiny_bert, tiny_splits, monkeypatch):
    from test_teacher_cache import RecordingBar

    import pkd.evaluate as evaluate

    RecordingBar.bars = []
    monkeypatch.setattr(evaluate, "tqdm", RecordingBar)
    model = build_teacher(str(tiny_bert), TASK, seed=0)
    dev = tiny_splits["dev"]
    logits = evaluate.predict_logits(model, dev, DataCollatorWithPadding(load_tokenizer(str(tiny_bert))), batch_size=16)
    assert logits.shape == (len(dev), 2)
    (bar,) = RecordingBar.bars
    assert bar.total == bar.steps == -(-len(dev) // 16) and bar.desc.startswith("predict")


def _prepared_mnli(root, tiny_bert, wnli: bool):
    from test_data_glue_tsv import write_mnli_with_leaderboard_extras

    from pkd.data import load_task
    from pkd.prepare import tokenize

    write_mnli_with_leaderboard_extras(root, wnli=wnli)
    task = get_task("mnli")
    return task, tokenize(load_task(task, "glue_dir", glue_dir=root), load_tokenizer(str(tiny_bert)), task, 32)


def _tsv(path):
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_mnli_evaluation_writes_ax_and_wnli_submission_files(tiny_bert, tmp_path):
    from pkd.evaluate import evaluate_splits

    task, splits = _prepared_mnli(tmp_path / "glue", tiny_bert, wnli=True)
    model = build_teacher(str(tiny_bert), task, seed=0)
    evaluate_splits(model, load_tokenizer(str(tiny_bert)), splits, task, tmp_path / "out")
    ax = _tsv(tmp_path / "out" / "AX.tsv")
    assert ax[0] == ["index", "prediction"] and [row[0] for row in ax[1:]] == ["0", "1", "2", "3", "4"]
    assert {row[1] for row in ax[1:]} <= set(task.label_names)  # MNLI's label names, from the MNLI model
    assert _tsv(tmp_path / "out" / "WNLI.tsv") == [["index", "prediction"], ["0", "1"], ["1", "1"]]


def test_wnli_without_data_is_all_zero_for_the_146_test_rows(tiny_bert, tmp_path):
    from pkd.evaluate import evaluate_splits

    task, splits = _prepared_mnli(tmp_path / "glue", tiny_bert, wnli=False)
    model = build_teacher(str(tiny_bert), task, seed=0)
    evaluate_splits(model, load_tokenizer(str(tiny_bert)), splits, task, tmp_path / "out")
    rows = _tsv(tmp_path / "out" / "WNLI.tsv")
    assert rows[0] == ["index", "prediction"] and rows[1:] == [[str(i), "0"] for i in range(146)]


@pytest.mark.parametrize(
    "name, split, file, rows",
    [
        ("sst2", "test", "SST-2", ["0", "1", "1"]),
        ("cola", "test", "CoLA", ["0", "1", "1"]),
        ("qqp", "test", "QQP", ["0", "1", "1"]),
        ("rte", "test", "RTE", ["entailment", "not_entailment", "not_entailment"]),
        ("mnli", "test_matched", "MNLI-m", ["entailment", "neutral", "contradiction"]),
        ("mnli", "test_mismatched", "MNLI-mm", ["entailment", "neutral", "contradiction"]),
        ("mnli", "ax", "AX", ["entailment", "neutral", "contradiction"]),
        ("stsb", "test", "STS-B", ["0.123", "5.000", "-0.200"]),
    ],
)
def test_submission_files_follow_the_leaderboard_format(name, split, file, rows, tmp_path):
    from pkd.evaluate import write_submission

    task = get_task(name)
    preds = (np.array([0.123456, 4.99999, -0.2], dtype=np.float32) if task.is_regression
             else np.array([0, 1, task.num_labels - 1]))
    assert task.submission_name(split) == file
    path = tmp_path / f"{file}.tsv"
    write_submission(path, [0, 1, 2], preds, task)
    assert path.read_text() == "index\tprediction\n" + "".join(f"{i}\t{r}\n" for i, r in enumerate(rows))
