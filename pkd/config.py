"""Typed, validated pipeline parameters (the `params.yaml` schema).

Every knob of the pipeline lives in params.yaml as plain YAML so that
`dvc params diff` and `dvc exp run -S key=value` work on it. This module is the
only reader: `load_params()` refuses unknown keys, wrong types and out-of-range
values before any heavy work starts, with one line that names the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pkd.data.tasks import TASKS, get_task

STRATEGIES = ("ft", "kd", "pkd_skip", "pkd_last")
# Which teacher-layer map a strategy uses for the patient loss (None: no patient loss).
STRATEGY_LAYER_MAP = {"ft": None, "kd": None, "pkd_skip": "skip", "pkd_last": "last"}


class ConfigError(ValueError):
    """A parameter is invalid; the message names the key and the allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class DataParams(_Section):
    source: Literal["builtin", "glue_dir", "hub"]
    glue_dir: str | None = None
    tasks: list[str] = Field(min_length=1)
    max_seq_length: int = Field(gt=0, le=512)
    max_train_samples: int | None = Field(default=None, gt=0)
    max_eval_samples: int | None = Field(default=None, gt=0)
    builtin_train_size: int = Field(default=3000, gt=0)
    builtin_dev_size: int = Field(default=1000, gt=0)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            if task not in TASKS:
                raise ValueError(f"unknown task '{task}'; allowed: {', '.join(TASKS)}")
        if len(set(tasks)) != len(tasks):
            raise ValueError("tasks must not repeat")
        return tasks

    @model_validator(mode="after")
    def _source_matches_tasks(self) -> "DataParams":
        for task in self.tasks:
            builtin = get_task(task).source_kind == "builtin"
            if builtin != (self.source == "builtin"):
                raise ValueError(
                    f"tasks: task '{task}' cannot be read from source '{self.source}' "
                    f"({'built-in tasks need source: builtin' if builtin else 'GLUE tasks need source: glue_dir or hub'})"
                )
        if self.source == "glue_dir":
            if not self.glue_dir:
                raise ValueError("glue_dir: required when source is glue_dir")
            if not Path(self.glue_dir).is_dir():
                raise ValueError(f"glue_dir: directory '{self.glue_dir}' does not exist")
        return self


class TrainParams(_Section):
    """Optimisation settings shared by the teacher and the students."""

    epochs: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    train_eval_samples: int = Field(default=1000, gt=0)


class TeacherParams(TrainParams):
    checkpoint: str = Field(min_length=1)
    cache_dtype: Literal["float32", "float16", "bfloat16"] = "float16"
    cache_batch_size: int = Field(default=64, gt=0)


class StudentParams(TrainParams):
    depths: list[int] = Field(min_length=1)
    strategies: list[str] = Field(min_length=1)
    init: Literal["pretrained", "finetuned"] = "pretrained"
    kd_reduction: Literal["mean", "batchmean"] = "mean"
    normalize_patience: bool = True

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in STRATEGIES:
                raise ValueError(f"unknown strategy '{name}'; allowed: {', '.join(STRATEGIES)}")
        return names

    @field_validator("depths")
    @classmethod
    def _positive_depths(cls, depths: list[int]) -> list[int]:
        for depth in depths:
            if depth < 1:
                raise ValueError(f"student depth {depth} must be >= 1")
        return depths


class StrategyParams(_Section):
    alpha: float = Field(ge=0, le=1)
    beta: float = Field(ge=0)
    temperature: float = Field(gt=0)
    learning_rate: float | None = Field(default=None, gt=0)


class TimingParams(_Section):
    warmup: int = Field(default=3, ge=0)
    repeats: int = Field(default=10, gt=0)
    max_examples: int = Field(default=256, gt=0)
    threads: int | None = Field(default=None, gt=0)


class Params(_Section):
    preset: str = "embedded"
    seed: int = 42
    # Command that runs the training stages: "python", or a torchrun line for DDP.
    launcher: str = Field(default="python", min_length=1)
    # Sentence state for the classifier and the patient loss: cls (paper) | mean (pkd/pooling.py).
    pooling: Literal["cls", "mean"] = "cls"
    # Training, cache pass, evaluation and timing: fp32 | bf16 | fp16 (pkd/precision.py; fp32 on a CPU).
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    data: DataParams
    teacher: TeacherParams
    student: StudentParams
    strategies: dict[str, StrategyParams]
    timing: TimingParams = TimingParams()

    @model_validator(mode="after")
    def _strategies_consistent(self) -> "Params":
        for name in self.strategies:
            if name not in STRATEGIES:
                raise ValueError(f"strategies: unknown strategy '{name}'; allowed: {', '.join(STRATEGIES)}")
        for name in self.student.strategies:
            if name not in self.strategies:
                raise ValueError(f"strategies: missing section for '{name}' listed in student.strategies")
        ft, kd = self.strategies.get("ft"), self.strategies.get("kd")
        if ft is not None and (ft.alpha != 0 or ft.beta != 0):
            raise ValueError("strategies.ft: FT trains on labels only, so alpha and beta must be 0")
        if kd is not None and kd.beta != 0:
            raise ValueError("strategies.kd.beta: KD has no patient loss, so beta must be 0")
        return self

    def strategy(self, name: str) -> StrategyParams:
        return self.strategies[name]

    def student_learning_rate(self, strategy: str) -> float:
        return self.strategies[strategy].learning_rate or self.student.learning_rate


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{key}: {msg}{shown}" if key else f"{msg}{shown}"


def parse_params(raw: dict) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        return parse_params(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def check_depths(params: Params, teacher_depth: int) -> None:
    """Depth rules that need the teacher's layer count (read from its checkpoint)."""
    for depth in params.student.depths:
        if depth >= teacher_depth:
            raise ConfigError(
                f"student.depths: a student of depth {depth} is not smaller than the "
                f"{teacher_depth}-layer teacher; allowed: 1..{teacher_depth - 1}"
            )
        for name in params.student.strategies:
            if STRATEGY_LAYER_MAP[name] and depth < 2:
                raise ConfigError(
                    f"student.depths: PKD strategy '{name}' needs depth >= 2 (got {depth}); "
                    f"allowed: 2..{teacher_depth - 1}"
                )
