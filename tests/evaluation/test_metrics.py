import math

import numpy as np
import pytest

from pkd.data import TASKS
from pkd.evaluation.metrics import glue_metrics, logits_to_predictions

# Confusion matrix of the fixture below, counted by hand (positive class 1):
#   TP = 3 (idx 0,1,2), FP = 2 (idx 3,4), FN = 1 (idx 5), TN = 4 (idx 6..9)
PRED = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
GOLD = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def test_accuracy_f1_mcc_against_hand_counts():
    out = glue_metrics(("f1", "accuracy", "matthews_corrcoef"), PRED, GOLD)
    assert list(out) == ["f1", "accuracy", "matthews_corrcoef"]
    assert out["accuracy"] == pytest.approx(7 / 10)
    # F1 = 2TP / (2TP + FP + FN) = 6 / 9
    assert out["f1"] == pytest.approx(2 / 3)
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 10 / sqrt(600)
    assert out["matthews_corrcoef"] == pytest.approx(10 / math.sqrt(600))
    assert all(type(v) is float for v in out.values())


def test_f1_positive_class_is_one():
    # Swapping the classes changes F1: TP=4, FP=1, FN=2 -> 8 / 11.
    flipped = glue_metrics(("f1",), [1 - p for p in PRED], [1 - g for g in GOLD])
    assert flipped["f1"] == pytest.approx(8 / 11)


def test_f1_without_positive_predictions_is_zero():
    assert glue_metrics(("f1",), [0, 0, 0], [1, 0, 1])["f1"] == 0.0


def test_pearson_and_spearman_known_values():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 4.0, 5.0, 4.0, 5.0]
    out = glue_metrics(("pearson", "spearmanr"), x, y)
    # Pearson: Sxy = 6, Sxx = 10, Syy = 6 -> 6 / sqrt(60)
    assert out["pearson"] == pytest.approx(6 / math.sqrt(60))
    # Spearman on ranks (ties averaged): y ranks 1, 2.5, 4.5, 2.5, 4.5 -> 7 / sqrt(90)
    assert out["spearmanr"] == pytest.approx(7 / math.sqrt(90))
    assert all(type(v) is float for v in out.values())


def test_accepts_numpy_arrays():
    out = glue_metrics(("accuracy",), np.array(PRED), np.array(GOLD))
    assert out == {"accuracy": pytest.approx(0.7)}


@pytest.mark.parametrize("names", [("acc",), ("accuracy", "f1_macro"), ()])
def test_unknown_or_missing_metric_names_raise(names):
    with pytest.raises(ValueError, match="metric"):
        glue_metrics(names, PRED, GOLD)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="9 labels"):
        glue_metrics(("accuracy",), PRED, GOLD[:9])


def test_two_dimensional_predictions_raise():
    with pytest.raises(ValueError, match="logits_to_predictions"):
        glue_metrics(("accuracy",), [[0.1, 0.9]], [1])


def test_every_task_metric_is_known():
    for task in TASKS.values():
        glue_metrics(task.metric_names, [0, 1, 1, 0], [0, 1, 0, 0])


def test_logits_to_predictions_classification_argmax():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5]])
    assert logits_to_predictions(logits, is_regression=False).tolist() == [1, 0, 1]
    # transformers passes (logits, hidden_states, ...) tuples
    assert logits_to_predictions((logits, "extra"), is_regression=False).tolist() == [1, 0, 1]


def test_logits_to_predictions_regression_squeezes():
    out = logits_to_predictions(np.array([[0.5], [2.5], [4.0]]), is_regression=True)
    assert out.shape == (3,)
    assert out.tolist() == [0.5, 2.5, 4.0]
    assert logits_to_predictions([1.0, 2.0], is_regression=True).tolist() == [1.0, 2.0]


def test_logits_to_predictions_bad_shapes_raise():
    with pytest.raises(ValueError, match="regression"):
        logits_to_predictions(np.zeros((3, 2)), is_regression=True)
    with pytest.raises(ValueError, match="classification"):
        logits_to_predictions(np.zeros(3), is_regression=False)


def test_undefined_correlation_is_none_with_a_warning_and_valid_json():
    import json

    with pytest.warns(UserWarning, match="pearson.*constant"):
        out = glue_metrics(("pearson", "spearmanr"), [2.5, 2.5, 2.5], [1.0, 2.0, 4.0])
    assert out == {"pearson": None, "spearmanr": None}
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # null, never NaN


def test_unlabelled_rows_are_refused_not_scored_as_a_class():
    # -1 (a class id) or NaN (a regression target) marks an unlabelled row: the caller scores only the others.
    with pytest.raises(ValueError, match="unlabelled"):
        glue_metrics(("accuracy", "macro_f1"), [0, 1, 0, 1], [0, 1, -1, -1])
    with pytest.raises(ValueError, match="unlabelled"):
        glue_metrics(("pearson",), [0.5, 1.0, 2.0], [0.5, 1.0, float("nan")])
    assert glue_metrics(("pearson",), [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]) == {"pearson": pytest.approx(1.0)}
