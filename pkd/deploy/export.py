"""The export stage's work: a saved student as ONNX fp32 and int8 (pkd.models.onnx), checked
against PyTorch on dev and scored; and the choice of the student `register` ships.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pkd.errors import ExportCheckError
from pkd.models.onnx import (
    INT8_FILE,
    INT8_RECIPE,
    OnnxClassifier,
    agreement,
    copy_metadata,
    export_dir,
    onnx_logits,
    size_mb,
)


def export_and_score(model_dir: str | Path, out_dir: str | Path, dev, task, *,
                     min_agreement: float = 0.999, batch_size: int = 64, recipe: str = INT8_RECIPE) -> dict:
    """Export a saved model, check ONNX Runtime against PyTorch on `dev`, score all three.

    dev: a tokenised, labelled split (prepared data). Raises ExportCheckError when
    the fp32 ONNX model predicts differently from PyTorch on more than
    1 - min_agreement of dev. The int8 model is scored and compared, not held to it:
    quantisation is allowed to move predictions, and its score says by how much.
    Returns the record the export stage writes to metrics/export/.
    """
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from pkd.evaluation.evaluate import predict_logits
    from pkd.evaluation.metrics import glue_metrics, logits_to_predictions
    from pkd.models.loading import load_classifier

    model = load_classifier(model_dir).eval()
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(model_dir)))
    fp32, int8, seconds = export_dir(model, out_dir, model_dir=model_dir, recipe=recipe)

    labels = np.asarray(dev["label"])
    ref = predict_logits(model, dev, collator, batch_size)
    record = {"task": task.name, "main_metric": task.main_metric, "n": len(dev), "seconds": seconds}

    def scored(logits):
        preds = logits_to_predictions(logits, task.is_regression)
        return glue_metrics(task.metric_names, preds, labels)

    record["pytorch_fp32"] = {**scored(ref), "size_mb": size_mb(Path(model_dir) / "model.safetensors")}
    for variant, path in (("onnx_fp32", fp32), ("onnx_int8", int8)):
        logits = onnx_logits(OnnxClassifier(path), dev, collator, batch_size)
        record[variant] = {**scored(logits), **agreement(ref, logits, task.is_regression), "size_mb": size_mb(path)}
    check = record["onnx_fp32"]
    if check["agreement"] < min_agreement:
        raise ExportCheckError(
            f"{fp32}: ONNX Runtime and PyTorch agree on {100 * check['agreement']:.2f}% of "
            f"{len(dev)} dev examples (< {100 * min_agreement:.1f}%), max abs logit diff {check['max_abs_diff']:.3g}")
    return record


def deployable(export: str | Path, dst: str | Path) -> Path:
    """A copy of an export directory with the int8 model only: what the MLflow model ships."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    copy_metadata(export, dst)
    shutil.copy2(Path(export) / INT8_FILE, dst / INT8_FILE)
    return dst


def input_example(dev, has_pair: bool, n: int = 3):
    """A few dev texts as the DataFrame the MLflow model takes (text_a[, text_b])."""
    import pandas as pd

    rows = dev.select(range(min(n, len(dev))))
    data = {"text_a": list(rows["text_a"])}
    if has_pair:
        data["text_b"] = list(rows["text_b"])
    return pd.DataFrame(data)


def registered_name(task: str) -> str:
    """Name of a task's model in MLflow's model registry."""
    return f"pkd-{task}"


def best_student(candidates: list[dict], latency: dict[int, float]) -> dict:
    """The candidate (dicts with score, depth) with the best score; ties go to the lower
    latency (by depth), then to fewer layers."""
    return min(candidates, key=lambda c: (-c["score"], latency.get(c["depth"], float("inf")), c["depth"]))
