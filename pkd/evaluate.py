"""Scoring a saved model on a task's labelled splits; GLUE submission files for unlabelled test.

GLUE's test labels are hidden (-1 in our schema): such a split is never
scored (scoring it is how users of the authors' code got "MRPC accuracy
0.28"); its predictions are written in the leaderboard's submission format.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from transformers import DataCollatorWithPadding

from pkd.data.tasks import TaskInfo
from pkd.metrics import glue_metrics, logits_to_predictions
from pkd.precision import autocast
from pkd.teacher_cache import MODEL_INPUTS


@torch.no_grad()
def predict_logits(
    model, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64, precision: str = "fp32"
) -> np.ndarray:
    """Logits [n, C] in dataset order (batches formed from length-sorted examples), under `precision`'s autocast."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(np.asarray(dataset["length"]), kind="stable")
    logits = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        rows = dataset.select(chosen)
        batch = collator([{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows])
        with autocast(precision, device):
            out = model(**{k: v.to(device) for k, v in batch.items()})
        logits[chosen] = out.logits.float().cpu().numpy()
    return logits


def is_labelled(split: Dataset) -> bool:
    labels = np.asarray(split["label"])
    return bool(len(labels)) and not np.all(labels == -1)


def evaluate_splits(
    model, tokenizer, splits: DatasetDict, task: TaskInfo, out_dir: Path, precision: str = "fp32"
) -> dict[str, dict]:
    """Metrics per labelled split; predictions TSV for every split; returns {split: metrics}."""
    collator = DataCollatorWithPadding(tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in [*task.dev_splits, *task.test_splits]:
        if name not in splits:
            continue
        split = splits[name]
        preds = logits_to_predictions(predict_logits(model, split, collator, precision=precision), task.is_regression)
        if is_labelled(split):
            labels = np.asarray(split["label"])
            results[name] = {**glue_metrics(task.metric_names, preds, labels), "n": len(split)}
            write_predictions(out_dir / f"{name}.tsv", split["idx"], preds, labels)
        else:
            write_submission(out_dir / f"{submission_name(task, name)}.tsv", split["idx"], preds, task)
    return results


def submission_name(task: TaskInfo, split: str) -> str:
    """GLUE leaderboard file names: SST-2.tsv, MNLI-m.tsv, MNLI-mm.tsv, ..."""
    suffix = {"test_matched": "-m", "test_mismatched": "-mm"}.get(split, "")
    return f"{task.glue_dir_name}{suffix}"


def write_predictions(path: Path, idx, preds, labels) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["idx", "prediction", "label"])
        writer.writerows(zip(idx, preds.tolist(), labels.tolist()))


def write_submission(path: Path, idx, preds, task: TaskInfo) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["index", "prediction"])
        for i, p in zip(idx, preds.tolist()):
            # MNLI/QNLI/RTE are scored on label names; the others on ids or scores.
            label = task.label_names[p] if task.name in ("mnli", "qnli", "rte") else p
            writer.writerow([i, f"{label:.3f}" if task.is_regression else label])
