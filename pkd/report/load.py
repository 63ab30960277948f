"""Read the pipeline's metrics files (eval, train histories, timing, sweep) from disk.

Nothing here computes a number; it only checks the files against their schema and
lays them out as DataFrames, remembering which file each row came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pkd.errors import MetricsError
from pkd.evaluation.schema import read_evaluation
from pkd.pipeline.paths import parse_student_name


@dataclass
class Metrics:
    """Everything the report is built from.

    evals: one row per (task, model, split, metric) with columns task, model, role,
        strategy, seed, depth, teacher_depth, main_metric, metric_names (tuple), split,
        metric, value, n, source.
    histories: one row per (task, model, epoch); columns task, model, strategy,
        depth, seed, epoch and whatever per-epoch keys the files hold.
    timing: the parsed timing.json, or None. sweep: sweep_best.json as a DataFrame,
        or None. sources: every file read, relative to metrics_dir.
    exports: one row per (task, model, variant) of export/<task>/<model>.json (variants
        by their timing.json names: pytorch, onnx_fp32, onnx_int8): task, model, strategy, depth, variant,
        main (main metric), agreement, max_abs_diff, size_mb, source; None when no
        student was exported.
    """

    metrics_dir: Path
    evals: pd.DataFrame
    histories: pd.DataFrame
    timing: dict[str, Any] | None
    sweep: pd.DataFrame | None
    sources: list[str] = field(default_factory=list)
    exports: pd.DataFrame | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MetricsError(f"cannot read metrics file {path}: {exc}") from exc


def _eval_rows(path: Path, source: str) -> list[dict[str, Any]]:
    return eval_rows(_read_json(path), path, source)


def eval_rows(data: Any, path: Path, source: str) -> list[dict[str, Any]]:
    """Rows of one evaluation record (the JSON content of `path`), checked against its path.

    Also used on records that `dvc exp show --json` returns for an experiment's files.
    """
    data = read_evaluation(data, path)
    base = {key: data[key] for key in ("task", "model", "role", "strategy", "seed", "depth", "teacher_depth",
                                       "main_metric")}
    base.update(metric_names=tuple(data["metric_names"]), source=source)
    rows = []
    for split, values in data["splits"].items():
        for metric, value in values.items():
            if metric == "n":
                continue
            value = float("nan") if value is None else float(value)
            rows.append({**base, "split": split, "metric": metric, "value": value,
                         "n": values.get("n")})
    return rows


def _history_rows(path: Path, source: str) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) and "epoch" in r for r in data):
        raise MetricsError(f"{path}: expected a JSON list of per-epoch records with 'epoch'")
    model = path.stem
    strategy, depth, seed = parse_student_name(model) or (None, None, None)
    base = {"task": path.parent.name, "model": model, "strategy": strategy,
            "depth": depth, "seed": seed, "source": source}
    return [{**base, **record} for record in data]


# An export record's variant keys (pkd.deploy.export) -> the runtime names of timing.json, which
# the report goes by (pkd.report.tables.RUNTIME_LABELS).
EXPORT_VARIANTS = {"pytorch_fp32": "pytorch", "onnx_fp32": "onnx_fp32", "onnx_int8": "onnx_int8"}


def _export_rows(path: Path, source: str) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise MetricsError(f"{path}: expected a JSON object")
    if not data.get("enabled", True):
        return []  # export.enabled was off: the stage only recorded that
    missing = [k for k in ("task", "model", "strategy", "depth", "main_metric", *EXPORT_VARIANTS) if k not in data]
    if missing:
        raise MetricsError(f"{path}: missing key(s) {missing}")
    rows = []
    for key, variant in EXPORT_VARIANTS.items():
        values = data[key]
        rows.append({"task": data["task"], "model": data["model"], "strategy": data["strategy"],
                     "depth": int(data["depth"]), "seed": data.get("seed"), "variant": variant,
                     "main": values.get(data["main_metric"]), "agreement": values.get("agreement"),
                     "max_abs_diff": values.get("max_abs_diff"), "size_mb": values.get("size_mb"),
                     "source": source})
    return rows


def load_metrics(metrics_dir: Path) -> Metrics:
    """Read every metrics file under metrics_dir. Raises MetricsError if there are no
    eval files, naming the directory searched."""
    metrics_dir = Path(metrics_dir)
    eval_dir = metrics_dir / "eval"
    eval_files = sorted(eval_dir.glob("*/*.json"))
    if not eval_files:
        raise MetricsError(
            f"no evaluation metrics found: expected files {eval_dir}/<task>/<model>.json "
            f"(run the evaluate stage first)"
        )
    sources: list[str] = []

    def rel(p: Path) -> str:
        s = p.relative_to(metrics_dir).as_posix()
        sources.append(s)
        return s

    eval_rows = [row for p in eval_files for row in _eval_rows(p, rel(p))]
    history_rows = [
        row for p in sorted((metrics_dir / "train").glob("*/*.json"))
        for row in _history_rows(p, rel(p))
    ]

    timing = None
    timing_path = metrics_dir / "timing.json"
    if timing_path.exists():
        timing = _read_json(timing_path)
        if not isinstance(timing, dict) or not isinstance(timing.get("models"), list):
            raise MetricsError(f"{timing_path}: expected an object with a 'models' list")
        rel(timing_path)

    sweep = None
    sweep_path = metrics_dir / "sweep_best.json"
    if sweep_path.exists():
        records = _read_json(sweep_path)
        if not isinstance(records, list):
            raise MetricsError(f"{sweep_path}: expected a JSON list of records")
        sweep = pd.DataFrame.from_records(records)
        rel(sweep_path)

    export_rows = [row for p in sorted((metrics_dir / "export").glob("*/*.json"))
                   for row in _export_rows(p, rel(p))]

    histories = pd.DataFrame.from_records(history_rows)
    if histories.empty:
        histories = pd.DataFrame(columns=["task", "model", "strategy", "depth", "seed", "epoch", "source"])
    return Metrics(
        metrics_dir=metrics_dir,
        evals=pd.DataFrame.from_records(eval_rows),
        histories=histories,
        timing=timing,
        sweep=sweep,
        sources=sources,
        exports=pd.DataFrame.from_records(export_rows) if export_rows else None,
    )
