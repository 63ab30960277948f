"""report.selection: the last epoch (the saved model) or each run's best dev epoch, labelled."""
import json
from pathlib import Path

import pandas as pd
import pytest

from pkd.errors import MetricsError
from pkd.report import build_report
from pkd.report.tables import loss_terms

# model -> per-epoch dev accuracy; the eval file holds the last epoch (the saved model).
DEV = {
    "teacher": [0.66, 0.68],
    "ft-3-s1": [0.55, 0.60, 0.58, 0.57],   # best epoch 2
    "ft-3-s2": [0.54, 0.56, 0.59, 0.59],   # a tie: the earliest, epoch 3
    "kd-3-s1": [0.56, 0.57, 0.58, 0.62],   # best is the last
    "kd-3-s2": [0.61, 0.55, 0.56, 0.57],   # best epoch 1
}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_metrics(root: Path, task: str = "rte", dev=DEV, mismatched: bool = False) -> Path:
    metrics = root / "metrics"
    for model, curve in dev.items():
        teacher = model == "teacher"
        strategy, depth, seed = (None, 12, 42) if teacher else (model.split("-")[0], 3, int(model[-1]))
        splits = {"dev_matched" if mismatched else "dev": {"accuracy": curve[-1], "n": 277}}
        if mismatched:
            splits["dev_mismatched"] = {"accuracy": curve[-1] - 0.01, "n": 300}
        _write(metrics / "eval" / task / f"{model}.json", {
            "task": task, "model": model, "role": "teacher" if teacher else "student", "strategy": strategy,
            "seed": seed, "depth": depth, "teacher_depth": 12, "main_metric": "accuracy",
            "metric_names": ["accuracy"], "splits": splits})
        _write(metrics / "train" / task / f"{model}.json",
               [{"epoch": e, "dev_accuracy": v, "train_accuracy": 0.9} for e, v in enumerate(curve, 1)])
    return metrics


def _t1(paths) -> pd.DataFrame:
    return pd.read_csv(paths["table1_main.csv"], dtype=str, keep_default_na=False).set_index("Model")


def test_best_dev_scores_each_runs_best_epoch_and_says_so(tmp_path):
    metrics = write_metrics(tmp_path)
    last = build_report(metrics, tmp_path / "last", {"tasks": ["rte"]})
    best = build_report(metrics, tmp_path / "best", {"tasks": ["rte"]}, selected="best_dev")
    t_last, t_best = _t1(last), _t1(best)
    # last: the eval files. FT (0.57, 0.59), KD (0.62, 0.57)
    assert t_last.loc["FT", "rte"] == "58.0±1.4" and t_last.loc["KD", "rte"] == "59.5±3.5"
    assert "Best epoch" not in t_last.columns
    # best_dev: FT (0.60 at 2, 0.59 at 3), KD (0.62 at 4, 0.61 at 1), teacher 0.68 at 2 of 2
    assert t_best.loc["FT", "rte"] == "59.5±0.7" and t_best.loc["KD", "rte"] == "61.5±0.7"
    assert t_best.loc["Teacher", "rte"] == "68.0"
    assert t_best.loc["FT", "Best epoch"] == "2.5 of 4" and t_best.loc["KD", "Best epoch"] == "2.5 of 4"
    assert t_best.loc["Teacher", "Best epoch"] == "2.0 of 2"
    paired = pd.read_csv(best["table1_paired_differences.csv"], dtype=str).set_index(["Comparison", "Column"])
    assert paired.loc[("KD − FT", "rte"), "Mean difference"] == "+2.0"  # (+2, +2) per seed
    md = best["report.md"].read_text()
    assert "best epoch on dev per run (dev-selected, optimistic" in md
    assert md.count("dev-selected, optimistic") >= 4  # the top line, Tables 1 and 2, the paired table, retention
    assert "dev-selected" not in last["report.md"].read_text()


def test_best_dev_keeps_only_the_dev_split_the_histories_score(tmp_path):
    metrics = write_metrics(tmp_path, task="mnli", mismatched=True)
    paths = build_report(metrics, tmp_path / "out", {"tasks": ["mnli"]}, selected="best_dev")
    t1 = _t1(paths)
    assert "mnli-m" in t1.columns and "mnli-mm" not in t1.columns
    assert t1.loc["FT", "mnli-m"] == "59.5±0.7"


def test_best_dev_refuses_a_model_without_history_and_a_test_split(tmp_path):
    metrics = write_metrics(tmp_path)
    (metrics / "train" / "rte" / "kd-3-s2.json").unlink()
    with pytest.raises(MetricsError, match="no training history train/rte/kd-3-s2.json"):
        build_report(metrics, tmp_path / "out", {}, selected="best_dev")
    with pytest.raises(ValueError, match="cannot score the 'test' split"):
        build_report(metrics, tmp_path / "out", {}, split="test", selected="best_dev")
    with pytest.raises(ValueError, match="report.selection: unknown 'best'"):
        build_report(metrics, tmp_path / "out", {}, selected="best")
    assert not (tmp_path / "out").exists()


def test_loss_terms_weigh_each_term_and_give_its_share():
    rows = []
    for seed, (ce, ds, pt) in ((1, (0.7, 0.5, 0.02)), (2, (0.5, 0.3, 0.04))):
        for epoch, scale in ((1, 1.0), (2, 0.8), (3, 0.5)):
            rows.append({"task": "rte", "model": f"pkd_skip-3-s{seed}", "strategy": "pkd_skip", "depth": 3,
                         "seed": seed, "epoch": epoch, "loss_ce": ce * scale, "loss_ds": ds * scale,
                         "loss_pt": pt * scale})
    rows.append({"task": "rte", "model": "ft-3-s1", "strategy": "ft", "depth": 3, "seed": 1, "epoch": 1,
                 "loss_ce": 0.6, "loss_ds": 0.0, "loss_pt": 0.0})
    table = loss_terms(pd.DataFrame(rows), {"pkd_skip": {"alpha": 0.2, "beta": 10.0},
                                            "ft": {"alpha": 0.0, "beta": 0.0}})
    assert list(table["Epoch"]) == ["1", "3"] and set(table["Model"]) == {"PKD-Skip"}  # FT has no distillation
    first = table.iloc[0]
    # seed 1: 0.56, 0.10, 0.20 (total 0.86); seed 2: 0.40, 0.06, 0.40 (total 0.86)
    assert first["(1−α)·L_CE"] == f"0.48 ({100 * (0.56 + 0.40) / 2 / 0.86:.0f}%)"
    assert first["α·L_DS"] == f"0.08 ({100 * (0.10 + 0.06) / 2 / 0.86:.0f}%)"
    assert first["β·L_PT"] == f"0.3 ({100 * (0.20 + 0.40) / 2 / 0.86:.0f}%)"
    assert first["Seeds"] == "2"


def test_a_teacher_used_as_is_has_no_best_epoch(tmp_path):
    """A fine-tuned teacher is scored, not trained: its history is one epoch-0 record."""
    metrics = write_metrics(tmp_path)
    (metrics / "train" / "rte" / "teacher.json").write_text(json.dumps([{"epoch": 0, "dev_accuracy": 0.68}]))
    t1 = _t1(build_report(metrics, tmp_path / "out", {"tasks": ["rte"]}, selected="best_dev"))
    assert t1.loc["Teacher", "Best epoch"] == "-" and t1.loc["Teacher", "rte"] == "68.0"
