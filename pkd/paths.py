"""Every pipeline output path, defined once.

dvc.yaml declares the same paths as outs; stage scripts get them from here so
that no path is spelled twice in Python code.
"""
from __future__ import annotations

from pathlib import Path

DATA = Path("data/prepared")
MODELS = Path("models")
CACHE = Path("cache/teacher")
METRICS = Path("metrics")
PREDICTIONS = Path("predictions")
REPORTS = Path("reports")
CHECKPOINTS = Path("runs/checkpoints")


def student_name(strategy: str, depth: int, seed: int) -> str:
    """One student per (strategy, depth, seed), e.g. "pkd_skip-3-s42"."""
    return f"{strategy}-{depth}-s{seed}"


def prepared(task: str) -> Path:
    return DATA / task


def teacher_model(task: str) -> Path:
    return MODELS / "teacher" / task


def student_model(task: str, strategy: str, depth: int, seed: int) -> Path:
    return MODELS / "students" / task / student_name(strategy, depth, seed)


def onnx_model(task: str, strategy: str, depth: int, seed: int) -> Path:
    """Export directory of a student: model.onnx, model_int8.onnx, config and tokenizer."""
    return MODELS / "onnx" / task / student_name(strategy, depth, seed)


def teacher_cache(task: str) -> Path:
    return CACHE / task


def history(task: str, model: str) -> Path:
    """Per-epoch train/dev metrics and loss terms (DVC plots)."""
    return METRICS / "train" / task / f"{model}.json"


def evaluation(task: str, model: str) -> Path:
    return METRICS / "eval" / task / f"{model}.json"


def export_metrics(task: str, model: str) -> Path:
    """ONNX fp32 / int8 vs PyTorch on dev: agreement, scores, sizes."""
    return METRICS / "export" / task / f"{model}.json"


def deployment(task: str) -> Path:
    """Which student of a task was registered in MLflow's model registry, and why."""
    return METRICS / "deploy" / f"{task}.json"


def predictions(task: str, model: str) -> Path:
    return PREDICTIONS / task / model


def timing() -> Path:
    return METRICS / "timing.json"


def checkpoints(run_name: str) -> Path:
    return CHECKPOINTS / run_name
