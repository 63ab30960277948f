"""GLUE metrics: the paper's accuracy, F1/accuracy (MRPC, QQP), the rest of GLUE, and macro-F1
(custom tasks, pkd.data.custom).

All results are plain Python floats so they can go straight into JSON; a metric
that is undefined for the given predictions (a correlation with constant
predictions) is None, written as null, with a warning, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# scikit-learn and scipy.stats are imported inside the metric that needs them: together
# they add about two seconds to the start-up of every stage that scores a model.


def _accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean())


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    # Binary F1 of the positive class 1, as GLUE scores MRPC and QQP.
    # zero_division=0: a model that never predicts 1 scores 0, not a warning.
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, average="binary", pos_label=1, zero_division=0))


def _macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    # The unweighted mean of the per-class F1 over the classes present in gold or predictions.
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, average="macro", zero_division=0))


def _matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


def _constant(*arrays: np.ndarray) -> bool:
    return any(np.all(a == a.flat[0]) for a in arrays)


def _pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    if _constant(pred, gold):
        return math.nan  # scipy would warn and return NaN itself
    from scipy.stats import pearsonr

    return float(pearsonr(pred.astype(float), gold.astype(float))[0])


def _spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    if _constant(pred, gold):
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(pred, gold)[0])


REGRESSION_METRICS = ("pearson", "spearmanr")

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "macro_f1": _macro_f1,
    "matthews_corrcoef": _matthews,
    "pearson": _pearson,
    "spearmanr": _spearman,
}


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def glue_metrics(
    task_metric_names: Sequence[str], predictions: Any, labels: Any
) -> dict[str, float | None]:
    """Compute the named metrics of predictions against gold labels.

    predictions: class ids of shape (n,) (floats for regression tasks), e.g. the
        output of `logits_to_predictions`. labels: gold values of shape (n,).
    Returns {name: float} in the order the names were given; None (with a
    warning) for a metric that is undefined here, e.g. Pearson on constant predictions.
    Raises ValueError for an unknown metric name or mismatched/empty inputs.
    """
    names = tuple(task_metric_names)
    if not names:
        raise ValueError("glue_metrics: no metric names given")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(
            f"glue_metrics: unknown metric name(s) {unknown}; known: {sorted(METRICS)}"
        )
    pred = _to_numpy(predictions)
    gold = _to_numpy(labels)
    if pred.ndim != 1 or gold.ndim != 1:
        raise ValueError(
            f"glue_metrics: predictions and labels must be 1-D, got shapes "
            f"{pred.shape} and {gold.shape} (convert logits with logits_to_predictions)"
        )
    if pred.shape != gold.shape:
        raise ValueError(
            f"glue_metrics: {pred.shape[0]} predictions but {gold.shape[0]} labels"
        )
    if pred.size == 0:
        raise ValueError("glue_metrics: no examples to score")
    # An unlabelled row would count as a class (-1) or poison a correlation (NaN).
    regression = any(n in REGRESSION_METRICS for n in names)
    if np.any(np.isnan(gold.astype(float))) or (not regression and np.any(gold == -1)):
        raise ValueError("glue_metrics: labels include unlabelled rows (-1 or NaN); score the labelled rows only")
    results: dict[str, float | None] = {}
    for name in names:
        value = METRICS[name](pred, gold)
        if not math.isfinite(value):
            warnings.warn(
                f"glue_metrics: {name} is undefined for these predictions (constant predictions "
                "or labels); recorded as null", UserWarning, stacklevel=2,
            )
            value = None
        results[name] = value
    return results


def logits_to_predictions(logits: Any, is_regression: bool) -> np.ndarray:
    """Turn model outputs into predictions for `glue_metrics`.

    logits: (n, num_labels) scores, or (n, 1) / (n,) for regression. A tuple (as
    transformers' Trainer passes when the model returns extra outputs) is read as
    its first element. Classification -> argmax over the last axis, shape (n,) ints;
    regression -> the scores squeezed to shape (n,) floats.
    """
    if isinstance(logits, tuple):
        logits = logits[0]
    arr = _to_numpy(logits)
    if is_regression:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                f"logits_to_predictions: regression expects shape (n,) or (n, 1), got {arr.shape}"
            )
        return arr.astype(float)
    if arr.ndim != 2:
        raise ValueError(
            f"logits_to_predictions: classification expects shape (n, num_labels), got {arr.shape}"
        )
    return arr.argmax(axis=-1)
