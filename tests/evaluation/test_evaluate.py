"""Scoring and GLUE submission files (pkd/evaluation/evaluate.py)."""
import numpy as np
import pytest
from transformers import DataCollatorWithPadding

from pkd.data import get_task
from pkd.models.loading import build_teacher, load_tokenizer

TASK = get_task("builtin_sentiment")


def test_evaluate_shows_progress(tiny_bert, tiny_splits, monkeypatch):
    from conftest import RecordingBar

    from pkd.evaluation import evaluate

    RecordingBar.bars = []
    monkeypatch.setattr(evaluate, "tqdm", RecordingBar)
    model = build_teacher(str(tiny_bert), TASK, seed=0)
    dev = tiny_splits["dev"]
    logits = evaluate.predict_logits(model, dev, DataCollatorWithPadding(load_tokenizer(str(tiny_bert))), batch_size=16)
    assert logits.shape == (len(dev), 2)
    (bar,) = RecordingBar.bars
    assert bar.total == bar.steps == -(-len(dev) // 16) and bar.desc.startswith("predict")


def _prepared_mnli(root, tiny_bert, wnli: bool):
    from glue_files import write_mnli_with_leaderboard_extras

    from pkd.data import load_task
    from pkd.data.prepare import tokenize

    write_mnli_with_leaderboard_extras(root, wnli=wnli)
    task = get_task("mnli")
    return task, tokenize(load_task(task, "glue_dir", glue_dir=root), load_tokenizer(str(tiny_bert)), task, 32)


def _tsv(path):
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_mnli_evaluation_writes_ax_and_wnli_submission_files(tiny_bert, tmp_path):
    from pkd.evaluation.evaluate import evaluate_splits

    task, splits = _prepared_mnli(tmp_path / "glue", tiny_bert, wnli=True)
    model = build_teacher(str(tiny_bert), task, seed=0)
    evaluate_splits(model, load_tokenizer(str(tiny_bert)), splits, task, tmp_path / "out")
    ax = _tsv(tmp_path / "out" / "AX.tsv")
    assert ax[0] == ["index", "prediction"] and [row[0] for row in ax[1:]] == ["0", "1", "2", "3", "4"]
    assert {row[1] for row in ax[1:]} <= set(task.label_names)  # MNLI's label names, from the MNLI model
    assert _tsv(tmp_path / "out" / "WNLI.tsv") == [["index", "prediction"], ["0", "1"], ["1", "1"]]


def test_wnli_without_data_is_all_zero_for_the_146_test_rows(tiny_bert, tmp_path):
    from pkd.evaluation.evaluate import evaluate_splits

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
    from pkd.evaluation.evaluate import write_submission

    task = get_task(name)
    preds = (np.array([0.123456, 4.99999, -0.2], dtype=np.float32) if task.is_regression
             else np.array([0, 1, task.num_labels - 1]))
    assert task.submission_name(split) == file
    path = tmp_path / f"{file}.tsv"
    write_submission(path, [0, 1, 2], preds, task)
    assert path.read_text() == "index\tprediction\n" + "".join(f"{i}\t{r}\n" for i, r in enumerate(rows))


def _scored(monkeypatch, tmp_path, task, labels, preds):
    """evaluate_splits on a prepared test split with these labels, the model's predictions fixed."""
    from datasets import Dataset, DatasetDict

    from pkd.data.schema import features_for
    from pkd.evaluation import evaluate

    logits = (np.asarray(preds, dtype=np.float32)[:, None] if task.is_regression
              else np.eye(task.num_labels, dtype=np.float32)[preds])
    monkeypatch.setattr(evaluate, "predict_logits", lambda *a, **k: logits)
    split = Dataset.from_dict({"idx": list(range(len(labels))), "text_a": ["x"] * len(labels),
                               "text_b": [None] * len(labels), "label": labels}, features=features_for(task))
    return evaluate.evaluate_splits(None, None, DatasetDict({"test": split}), task, tmp_path)


def test_a_partly_labelled_test_split_is_scored_on_its_labelled_rows(monkeypatch, tmp_path):
    from pkd.data.custom import CustomTaskSpec, task_info

    spec = CustomTaskSpec(train="t.csv", dev="d.csv", test="x.csv", text="t", label="l")
    task = task_info("t", spec, ("neg", "pos"))
    results = _scored(monkeypatch, tmp_path, task, [0, 1, -1, -1], [0, 1, 0, 1])
    assert results["test"] == {"accuracy": 1.0, "macro_f1": 1.0, "matthews_corrcoef": 1.0, "n": 2}
    rows = _tsv(tmp_path / "test.tsv")
    assert rows == [["idx", "prediction", "label"], ["0", "0", "0"], ["1", "1", "1"], ["2", "0", ""], ["3", "1", ""]]


def test_a_regression_target_of_minus_one_is_a_label(monkeypatch, tmp_path):
    from pkd.data.custom import CustomTaskSpec, task_info

    spec = CustomTaskSpec(train="t.csv", dev="d.csv", test="x.csv", text="t", label="l", regression=True)
    task = task_info("t", spec, ())
    results = _scored(monkeypatch, tmp_path, task, [-1.0, 2.0, float("nan"), 0.5], [-1.0, 2.0, 9.0, 0.5])
    assert results["test"]["pearson"] == pytest.approx(1.0) and results["test"]["n"] == 3
    with pytest.warns(UserWarning, match="constant"):
        results = _scored(monkeypatch, tmp_path, task, [-1.0, -1.0], [0.5, 1.0])
    assert results["test"] == {"pearson": None, "spearmanr": None, "n": 2}  # scored, not taken for unlabelled
