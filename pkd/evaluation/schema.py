"""The evaluation record: metrics/eval/<task>/<model>.json, one per scored model.

Written by the evaluate stage (`evaluation_record`) and read by the report and
the sweep table (`read_evaluation`): the schema lives here only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pkd.errors import MetricsError
from pkd.method import strategies as registry

REQUIRED_KEYS = ("task", "model", "role", "depth", "main_metric", "metric_names", "splits")


def evaluation_record(
    *, task, model: str, strategy: str | None, seed: int, depth: int, teacher_depth: int, precision: str,
    splits: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The record of one model: `task` a TaskInfo, `strategy` None for the teacher, `splits` {split: metrics}."""
    return {
        "task": task.name,
        "model": model,
        "role": "student" if strategy else "teacher",
        "strategy": strategy,
        "seed": seed,
        "depth": depth,
        "teacher_depth": teacher_depth,
        "precision": precision,
        "main_metric": task.main_metric,
        "metric_names": list(task.metric_names),
        "splits": splits,
    }


def restore_from_exp_show(data: Any) -> Any:
    """A record as `dvc exp show --json` gives it, made whole again: DVC's metrics
    reader keeps only numbers, strings and objects, so it drops `metric_names` (a list)
    and a teacher's `strategy` (null)."""
    if not isinstance(data, dict):
        return data
    record = dict(data)
    record.setdefault("strategy", None)
    splits = record.get("splits")
    if "metric_names" not in record and isinstance(splits, dict) and splits:
        first = next(iter(splits.values()))
        if isinstance(first, dict):
            # The metric names are the keys of every split (besides the example count n).
            record["metric_names"] = [k for k in first if k != "n"]
    return record


def read_evaluation(data: Any, path: str | Path) -> dict[str, Any]:
    """A record checked against its schema and its path (metrics/eval/<task>/<model>.json).

    Returns it with `strategy` None for the teacher and `seed` None where the file
    predates seeds; raises MetricsError naming the file otherwise."""
    path = Path(path)
    if not isinstance(data, dict):
        raise MetricsError(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise MetricsError(f"{path}: missing key(s) {missing}")
    # The path is how the pipeline names a result; a file whose content disagrees
    # was copied or written to the wrong place, and its numbers would be mislabelled.
    if data["task"] != path.parent.name or data["model"] != path.stem:
        raise MetricsError(
            f"{path}: content says task={data['task']!r}, model={data['model']!r}, "
            f"but the path says task={path.parent.name!r}, model={path.stem!r}"
        )
    strategy = None if data["role"] == "teacher" else data.get("strategy")
    if data["role"] != "teacher" and strategy not in registry.names():
        raise MetricsError(f"{path}: unknown strategy {strategy!r}; expected one of {registry.names()}")
    if not isinstance(data["splits"], dict) or not data["splits"]:
        raise MetricsError(f"{path}: 'splits' must be a non-empty object")
    return {**data, "strategy": strategy, "seed": data.get("seed"), "depth": int(data["depth"]),
            "teacher_depth": data.get("teacher_depth", data["depth"] if strategy is None else None)}
