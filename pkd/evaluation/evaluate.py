"""Scoring a saved model on a task's labelled splits; GLUE submission files for unlabelled test.

GLUE's test labels are hidden (-1 in our schema): such a split is never
scored (scoring it is how users of the authors' code got "MRPC accuracy
0.28"); its predictions are written in the leaderboard's submission format.
A split with some labelled rows (a custom task's test) is scored on those rows
alone; `n` is their number.

MNLI's evaluation also writes the leaderboard's two files that no task trains
for, so a submission folder is complete: AX.tsv (the diagnostic set, predicted
by the MNLI model, when the data has it) and WNLI.tsv (WNLI train's majority
class; all 0, "not_entailment", for the 146 test rows when no WNLI data is given).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

from pkd.data.schema import labelled_rows
from pkd.data.tasks import DIAGNOSTIC_SPLIT, WNLI_SPLIT, WNLI_TEST_SIZE, TaskInfo
from pkd.evaluation.metrics import glue_metrics, logits_to_predictions
from pkd.models.families import model_inputs
from pkd.models.precision import autocast


@torch.no_grad()
def predict_logits(
    model, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64, desc: str = "predict",
    precision: str = "fp32",
) -> np.ndarray:
    """Logits [n, C] in dataset order (batches formed from length-sorted examples), under `precision`'s autocast."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(np.asarray(dataset["length"]), kind="stable")
    logits = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    batches = range(0, len(order), batch_size)
    inputs = model_inputs(model)
    # disable=None: a bar on a terminal, none in logs.
    for start in tqdm(batches, total=len(batches), desc=desc, unit="batch", disable=None):
        chosen = order[start : start + batch_size]
        rows = dataset.select(chosen)
        batch = collator([{k: r[k] for k in inputs if k in r} for r in rows])
        with autocast(precision, device):
            out = model(**{k: v.to(device) for k, v in batch.items()})
        logits[chosen] = out.logits.float().cpu().numpy()
    return logits


def evaluate_splits(
    model, tokenizer, splits: DatasetDict, task: TaskInfo, out_dir: Path, precision: str = "fp32"
) -> dict[str, dict]:
    """Metrics per labelled split; predictions TSV for every split; returns {split: metrics}."""
    collator = DataCollatorWithPadding(tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    # The diagnostic set is predicted by this task's model; WNLI's file is written, not predicted.
    predicted_extras = [s for s in task.leaderboard_extras if s == DIAGNOSTIC_SPLIT]
    for name in [*task.dev_splits, *task.test_splits, *predicted_extras]:
        if name not in splits:
            continue
        split = splits[name]
        logits = predict_logits(model, split, collator, desc=f"predict {task.name} {name}", precision=precision)
        preds = logits_to_predictions(logits, task.is_regression)
        labels = np.asarray(split["label"])
        scored = labelled_rows(labels, task)
        if scored.any():
            n = int(scored.sum())
            if n < len(split):
                print(f"{task.name} {name}: scored the {n} labelled rows of {len(split)}", file=sys.stderr)
            results[name] = {**glue_metrics(task.metric_names, preds[scored], labels[scored]), "n": n}
            write_labelled_predictions(out_dir / f"{name}.tsv", split["idx"], preds, labels, scored)
        else:
            write_submission(out_dir / f"{task.submission_name(name)}.tsv", split["idx"], preds, task)
    if WNLI_SPLIT in task.leaderboard_extras:
        write_wnli(out_dir / f"{task.submission_name(WNLI_SPLIT)}.tsv", splits.get(WNLI_SPLIT))
    return results


def write_wnli(path: Path, wnli: Dataset | None) -> None:
    """WNLI.tsv: the majority-class labels prepared with the data, or all 0 without WNLI data."""
    if wnli is None:
        rows = [(i, 0) for i in range(WNLI_TEST_SIZE)]
    else:
        rows = list(zip(wnli["idx"], wnli["label"]))
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["index", "prediction"])
        writer.writerows(rows)


def write_labelled_predictions(path: Path, idx, preds, labels, scored) -> None:
    """A labelled split's predictions beside the gold labels: idx, prediction, label (empty where unlabelled)."""
    gold = [label if known else "" for label, known in zip(labels.tolist(), scored.tolist())]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["idx", "prediction", "label"])
        writer.writerows(zip(idx, preds.tolist(), gold))


def write_submission(path: Path, idx, preds, task: TaskInfo) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["index", "prediction"])
        for i, p in zip(idx, preds.tolist()):
            writer.writerow([i, submission_value(task, p)])


def submission_value(task: TaskInfo, prediction):
    """One prediction as the leaderboard reads it for this task (TaskInfo.submission_labels)."""
    if task.submission_labels == "score":
        return f"{prediction:.3f}"
    if task.submission_labels == "name":
        return task.label_names[prediction]
    return prediction
