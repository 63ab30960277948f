"""Every pipeline output path, defined once.

dvc.yaml declares the same paths as outs; stage scripts and the commands
(`pkd-sweep-table`, `pkd-teacher-study`, `pkd repro`) get them from here so that
no path is spelled twice in Python code.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

DATA = Path("data/prepared")
MODELS = Path("models")
CACHE = Path("cache/teacher")
METRICS = Path("metrics")
PREDICTIONS = Path("predictions")
REPORTS = Path("reports")
CHECKPOINTS = Path("runs/checkpoints")
LOGS = Path("runs/logs")
# The folders that hold dvc.yaml's outputs: DVC refuses an input folder that holds one or lies in one.
OUTPUTS = (DATA, MODELS, CACHE, METRICS, PREDICTIONS, REPORTS)


# `student_name`'s format, read back; files from before seeds lack "-s<seed>". A strategy
# name is an identifier (pkd.method.strategies.register), so it holds no "-".
STUDENT_NAME = re.compile(r"(?P<strategy>\w+?)-(?P<depth>\d+)(?:-s(?P<seed>\d+))?")


def student_name(strategy: str, depth: int, seed: int) -> str:
    """One student per (strategy, depth, seed): "<strategy>-<depth>-s<seed>"."""
    return f"{strategy}-{depth}-s{seed}"


def parse_student_name(name: str) -> tuple[str, int, int | None] | None:
    """(strategy, depth, seed) of a student model name; None for the teacher or a foreign name."""
    match = STUDENT_NAME.fullmatch(name)
    if not match:
        return None
    return match["strategy"], int(match["depth"]), int(match["seed"]) if match["seed"] else None


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


def parse_evaluation(path: str | Path) -> tuple[str, str] | None:
    """(task, model) of an evaluation record's path, as `evaluation` writes it and `dvc exp
    show` lists it (relative to any root: ".../metrics/eval/<task>/<model>.json"); None for
    any other file."""
    parts = PurePosixPath(Path(path).as_posix()).parts
    if len(parts) < 4 or PurePosixPath(*parts[-4:-2]) != PurePosixPath(METRICS / "eval") or not parts[-1].endswith(".json"):
        return None
    return parts[-2], parts[-1].removesuffix(".json")


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


def stage_log(stage: str) -> Path:
    """The output of one stage run by `pkd repro --jobs N`."""
    return LOGS / (stage.replace("/", "_").replace(":", "_") + ".log")


def sweep_best() -> Path:
    """`pkd-sweep-table`'s best setting per (task, strategy, depth); the report includes it."""
    return METRICS / "sweep_best.json"


def teacher_study() -> Path:
    """`pkd-teacher-study`'s table (Markdown); its numbers are beside it as .json."""
    return REPORTS / "teacher_study.md"
