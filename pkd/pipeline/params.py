"""Typed, validated pipeline parameters (the `params.yaml` schema).

Every knob of the pipeline lives in params.yaml as plain YAML so that
`dvc params diff` and `dvc exp run -S key=value` work on it. This module is the
only reader: `load_params()` refuses unknown keys, wrong types and out-of-range
values before any heavy work starts, with one line that names the key.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pkd.allowed_values import (
    CACHE_DTYPES,
    INT8_RECIPES,
    KD_REDUCTIONS,
    POOLINGS,
    PRECISIONS,
    SELECTIONS,
)
from pkd.data.custom import CustomTaskSpec
from pkd.data.sources import SOURCES, needed_sources, task_input
from pkd.data.tasks import TASKS, get_task
from pkd.errors import ConfigError
from pkd.method import strategies as registry
from pkd.pipeline.paths import OUTPUTS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


def _known_tasks(info: ValidationInfo) -> tuple[str, ...]:
    """The task names a params file may use: pkd's own and its data.custom_tasks (parse_params
    passes them as the validation context)."""
    return (info.context or {}).get("tasks", tuple(TASKS))


class DataParams(_Section):
    source: str  # a name in pkd.data.sources.SOURCES: where GLUE and built-in tasks come from
    glue_dir: str | None = None
    tasks: list[str] = Field(min_length=1)
    # The user's own tasks, by name (pkd/data/custom.py); each carries its own files or dataset.
    custom_tasks: dict[str, CustomTaskSpec] = Field(default_factory=dict)
    # What each task's data is read from, the path dvc.yaml's prepare@<task> depends on, so that
    # an edited row re-runs prepare. Derived from the keys above (task_inputs); dvc.yaml cannot
    # compute it, so params.yaml spells it and a stale value is refused with the right one.
    inputs: dict[str, str] | None = None
    max_seq_length: int = Field(gt=0, le=512)
    max_train_samples: int | None = Field(default=None, gt=0)
    max_eval_samples: int | None = Field(default=None, gt=0)
    builtin_train_size: int = Field(default=1000, gt=0)
    builtin_dev_size: int = Field(default=500, gt=0)

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        if source not in SOURCES:
            raise ValueError(f"unknown source '{source}'; allowed: {', '.join(SOURCES)}")
        return source

    @field_validator("custom_tasks")
    @classmethod
    def _new_names(cls, custom: dict[str, CustomTaskSpec]) -> dict[str, CustomTaskSpec]:
        for name in custom:
            if name in TASKS:
                raise ValueError(f"task '{name}' is one of pkd's own tasks; give yours another name")
            if not name.isidentifier():
                raise ValueError(f"task name '{name}' must be an identifier (letters, digits, _)")
        return custom

    @model_validator(mode="after")
    def _tasks_and_sources(self) -> "DataParams":
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks: tasks must not repeat")
        for task in self.tasks:
            if task in self.custom_tasks:
                continue
            if task not in TASKS:
                known = list(TASKS) + list(self.custom_tasks)
                raise ValueError(f"tasks: unknown task '{task}'; allowed: {', '.join(known)} "
                                 f"(or define it under data.custom_tasks)")
            info = get_task(task)
            if info.source_kind != SOURCES[self.source].task_kind:
                raise ValueError(
                    f"tasks: task '{task}' cannot be read from source '{self.source}' "
                    f"({needed_sources(info)})"
                )
        if self.source == "glue_dir" and any(t not in self.custom_tasks for t in self.tasks):
            if not self.glue_dir:
                raise ValueError("glue_dir: required when source is glue_dir")
            if not Path(self.glue_dir).is_dir():
                raise ValueError(f"glue_dir: directory '{self.glue_dir}' does not exist")
        for task in self.tasks:
            spec = self.custom_tasks.get(task)
            for split, path in (spec.splits.items() if spec and spec.dataset is None else ()):
                if not Path(path).is_file():
                    raise ValueError(f"custom_tasks: {task}.{split}: file '{path}' does not exist")
        expected = task_inputs(self)
        if self.inputs is not None and self.inputs != expected:
            shown = "{" + ", ".join(f"{k}: {v}" for k, v in expected.items()) + "}"
            raise ValueError(f"inputs: must be {shown} for these tasks and sources (the paths "
                             f"prepare reads, which DVC hashes); `pkd-preset --sync` writes it")
        return self

    def custom_task(self, task: str) -> CustomTaskSpec | None:
        return self.custom_tasks.get(task)


def task_inputs(data) -> dict[str, str]:
    """data.inputs for a `data` section: {task: the file or folder its prepare stage reads}."""
    inputs = {}
    for task in data.tasks:
        custom = data.custom_tasks.get(task)
        inputs[task] = task_input(task, data.source, data.glue_dir, custom)
        if custom is not None and custom.input_path() is not None:
            _check_apart_from_outputs(task, inputs[task], "dataset" if custom.dataset is not None else "files")
    return inputs


def _check_apart_from_outputs(task: str, folder: str, what: str) -> None:
    """Refuse a task folder that holds pipeline outputs (`data`, the repository root) or lies in
    them: DVC would find one path both an input and an output, and then refuse every command."""
    where = Path(os.path.abspath(folder))  # paths in params.yaml are relative to the repository root
    for out in OUTPUTS:
        out_path = Path(os.path.abspath(out))
        if where == out_path or where in out_path.parents or out_path in where.parents:
            relation = "lies in" if out_path in where.parents else "holds"
            raise ConfigError(
                f"custom_tasks: {task}: the folder of its {what}, '{folder}', {relation} the pipeline's outputs "
                f"({out.as_posix()}), and DVC cannot also track it as the task's input; move the {what} to a "
                f"folder of their own, e.g. data/raw/{task}/")


class TaskOverride(_Section):
    """Per-task training settings that replace the section's own (e.g. more epochs on MRPC)."""

    epochs: float | None = Field(default=None, gt=0)
    learning_rate: float | None = Field(default=None, gt=0)


class TrainParams(_Section):
    """Optimisation settings shared by the teacher and the students."""

    epochs: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    train_eval_samples: int = Field(default=300, gt=0)
    # Small tasks (MRPC, RTE) need more epochs than SST-2's 67k sentences; the paper
    # tuned per task too. {task: {epochs, learning_rate}}.
    per_task: dict[str, TaskOverride] = Field(default_factory=dict)

    @field_validator("per_task")
    @classmethod
    def _known_override_tasks(cls, per_task: dict[str, TaskOverride], info: ValidationInfo) -> dict[str, TaskOverride]:
        known = _known_tasks(info)
        for task in per_task:
            if task not in known:
                raise ValueError(f"unknown task '{task}'; allowed: {', '.join(known)}")
        return per_task

    def for_task(self, task: str):
        """These settings with the task's overrides applied (and no per_task table)."""
        override = self.per_task.get(task)
        changes = {k: v for k, v in (override.model_dump() if override else {}).items() if v is not None}
        return self.model_copy(update={**changes, "per_task": {}})


class TeacherParams(TrainParams):
    checkpoint: str = Field(min_length=1)
    # The checkpoint is a classifier already fine-tuned on the task: it is used as is, with no
    # teacher training (its labels are checked against the task's; pkd.models.loading.load_fine_tuned).
    fine_tuned: bool = False
    cache_dtype: Literal[CACHE_DTYPES] = "float16"
    cache_batch_size: int = Field(default=64, gt=0)


def split_strategies(strategies: list[str], init: str = "pretrained") -> dict[str, list[str]]:
    """student.finetune_strategies and student.distill_strategies for a strategy list: the
    dvc.yaml stage that trains each (finetune: labels only; distill: reads the teacher)."""
    finetuned = init == "finetuned"
    label_only = [s for s in strategies if not registry.get_strategy(s).reads_teacher]
    return {
        "finetune_strategies": [s for s in strategies if s in label_only and not finetuned],
        "distill_strategies": [s for s in strategies if s not in label_only or finetuned],
    }


class StudentParams(TrainParams):
    depths: list[int] = Field(min_length=1)
    strategies: list[str] = Field(min_length=1)
    # One student per seed: the seed sets the fresh head's init and the data order.
    # The teacher, its cache and the data use the top-level `seed`.
    seeds: list[int] = Field(default=[42], min_length=1)
    # Students may train on a random subset of the training set (the teacher and its
    # cache use all of it); the subset is drawn with the top-level seed, so it is the
    # same for every student and seed.
    max_train_samples: int | None = Field(default=None, gt=0)
    init: Literal["pretrained", "finetuned"] = "pretrained"
    # Pre-trained checkpoint the student's first M layers come from (null: teacher.checkpoint).
    init_checkpoint: str | None = Field(default=None, min_length=1)
    kd_reduction: Literal[KD_REDUCTIONS] = "mean"
    normalize_patience: bool = True
    # Per task ("mnli") or task and depth ("rte-3"); the authors chose it so (docs/method.md).
    normalize_patience_overrides: dict[str, bool] = {}

    @field_validator("normalize_patience_overrides")
    @classmethod
    def _known_override_keys(cls, overrides: dict[str, bool], info: ValidationInfo) -> dict[str, bool]:
        known = _known_tasks(info)
        for key in overrides:
            task, _, depth = key.rpartition("-")
            if key in known:
                continue
            if task not in known or not depth.isdigit():
                raise ValueError(
                    f"unknown task '{key}'; keys are <task> or <task>-<depth>, tasks: {', '.join(known)}"
                )
            if int(depth) < 1:
                raise ValueError(f"key '{key}': student depth must be >= 1")
        return overrides

    def patience_normalized(self, task: str, depth: int) -> bool:
        """Whether the patient loss L2-normalises for this student: task-depth key, else task key, else the default."""
        overrides = self.normalize_patience_overrides
        return overrides.get(f"{task}-{depth}", overrides.get(task, self.normalize_patience))
    # `strategies` split by the DVC stage that trains them (dvc.yaml cannot filter a list):
    # `finetune` for those that never read the teacher, `distill` for the others. Derived
    # when absent; when given, they must match `strategies` (see _split_by_stage).
    finetune_strategies: list[str] | None = None
    distill_strategies: list[str] | None = None

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        for name in names:
            registry.get_strategy(name)  # names the unknown one and the allowed ones
        return names

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must not repeat (got {seeds})")
        return seeds

    @field_validator("depths")
    @classmethod
    def _positive_depths(cls, depths: list[int]) -> list[int]:
        for depth in depths:
            if depth < 1:
                raise ValueError(f"student depth {depth} must be >= 1")
        return depths

    def reads_teacher(self, strategy: str) -> bool:
        """Whether a student of `strategy` reads the fine-tuned teacher (its cache, or its weights)."""
        return registry.get_strategy(strategy).reads_teacher or self.init == "finetuned"

    @model_validator(mode="before")
    @classmethod
    def _split_by_stage(cls, raw):
        if not isinstance(raw, dict) or not isinstance(raw.get("strategies"), list):
            return raw
        if any(s not in registry.names() for s in raw["strategies"]):
            return raw  # the field's own validator names the unknown one
        expected = split_strategies(raw["strategies"], raw.get("init", "pretrained"))
        for key, value in expected.items():
            if raw.get(key) is None:
                raw = {**raw, key: value}
            elif raw[key] != value:
                raise ValueError(
                    f"{key}: must list, in order, the strategies of student.strategies that "
                    f"{'do not ' if key.startswith('finetune') else ''}read the teacher "
                    f"(with init: {raw.get('init', 'pretrained')}): {value} (got {raw[key]})"
                )
        return raw


class StrategyParams(_Section):
    alpha: float = Field(ge=0, le=1)
    beta: float = Field(ge=0)
    temperature: float = Field(gt=0)
    learning_rate: float | None = Field(default=None, gt=0)
    # An extension, not the paper's method: learned linear maps from the student's layer states
    # to the teacher's width, trained with the student and never saved with it (pkd/method/projection.py).
    # It lets PKD match a teacher of another hidden size; the report labels it "<strategy> + proj".
    projection: bool = False


class TimingParams(_Section):
    warmup: int = Field(default=1, ge=0)
    repeats: int = Field(default=3, gt=0)
    max_examples: int = Field(default=32, gt=0)
    threads: int | None = Field(default=None, gt=0)


class ExportParams(_Section):
    """ONNX export, int8 quantisation and MLflow registration of the students (opt-in)."""

    enabled: bool = False
    min_agreement: float = Field(default=0.999, gt=0, le=1)  # fp32 ONNX vs PyTorch predictions on dev
    register_best: bool = True  # register each task's best student as MLflow model `pkd-<task>`
    # How the int8 model is quantised (pkd.models.onnx; benchmarks/studies/int8_recipes.py compares them).
    int8_recipe: Literal[INT8_RECIPES] = "per_channel"
    # The tasks dvc.yaml makes export and register stages for: data.tasks when enabled, [] when
    # not, so that a disabled export adds no stage (dvc.yaml cannot test a boolean, and a
    # foreach over an empty list makes nothing). Derived when absent; when given, it must
    # match (see Params._export_tasks_follow_the_switch).
    tasks: list[str] | None = None


class ReportParams(_Section):
    # last: the saved model (the default: what ships). best_dev: each run's best epoch on dev, from
    # its training history, the authors' protocol; it selects on the split it scores (pkd/report/selection.py).
    selection: Literal[SELECTIONS] = "last"


def export_tasks(enabled: bool, tasks: list[str]) -> list[str]:
    """export.tasks for export.enabled and data.tasks."""
    return list(tasks) if enabled else []


class Params(_Section):
    preset: str = "embedded"
    seed: int = 42
    # Command that runs the training stages: "python", or a torchrun line for DDP.
    launcher: str = Field(default="python", min_length=1)
    # Sentence state for the classifier and the patient loss: cls (paper) | mean (pkd/method/pooling.py).
    pooling: Literal[POOLINGS] = "mean"
    # Training, cache pass, evaluation and timing: fp32 | bf16 | fp16 (pkd/models/precision.py; fp32 on a CPU).
    precision: Literal[PRECISIONS] = "fp32"
    data: DataParams
    teacher: TeacherParams
    student: StudentParams
    strategies: dict[str, StrategyParams]
    timing: TimingParams = TimingParams()
    export: ExportParams = ExportParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="before")
    @classmethod
    def _export_tasks_follow_the_switch(cls, raw):
        if not isinstance(raw, dict):
            return raw
        data, export = raw.get("data"), raw.get("export") or {}
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not isinstance(export, dict):
            return raw  # the sections' own validators name what is wrong
        enabled = export.get("enabled", False)
        if not isinstance(enabled, bool):
            return raw
        expected = export_tasks(enabled, data["tasks"])
        if export.get("tasks") is None:
            return {**raw, "export": {**export, "tasks": expected}}
        if export["tasks"] != expected:
            switch = str(enabled).lower()
            raise ValueError(
                f"export.tasks: must be {'data.tasks' if enabled else '[]'} while export.enabled is {switch} "
                f"(dvc.yaml's export stages come from it; got {export['tasks']}): "
                f"dvc exp run -S export.enabled={switch} -S 'export.tasks=[{','.join(expected)}]'"
            )
        return raw

    @model_validator(mode="after")
    def _strategies_consistent(self) -> "Params":
        for name in self.strategies:
            if name not in registry.names():
                raise ValueError(f"strategies: unknown strategy '{name}'; allowed: {', '.join(registry.names())}")
        for name in self.student.strategies:
            if name not in self.strategies:
                raise ValueError(f"strategies: missing section for '{name}' listed in student.strategies")
        for name, knobs in self.strategies.items():
            strategy = registry.get_strategy(name)
            if not strategy.reads_teacher and (knobs.alpha != 0 or knobs.beta != 0):
                raise ValueError(f"strategies.{name}: {strategy.label} trains on labels only, so alpha and beta must be 0")
            if not strategy.soft_labels and knobs.alpha != 0:
                raise ValueError(f"strategies.{name}.alpha: {strategy.label} has no soft-label loss, so alpha must be 0")
            if not strategy.patient and knobs.beta != 0:
                raise ValueError(f"strategies.{name}.beta: {strategy.label} has no patient loss, so beta must be 0")
            if knobs.projection and not strategy.patient:
                raise ValueError(f"strategies.{name}.projection: {strategy.label} has no patient loss to project "
                                 "for; only a patient strategy may set it")
        if self.teacher.fine_tuned and len(self.data.tasks) != 1:
            raise ValueError(f"teacher.fine_tuned: a fine-tuned teacher is the classifier of one task; "
                             f"data.tasks lists {len(self.data.tasks)}")
        if self.student.init == "finetuned" and self.student.init_checkpoint is not None:
            raise ValueError(
                "student.init_checkpoint: must be null when student.init is finetuned "
                "(the student is then cut from the fine-tuned teacher)"
            )
        return self

    def student_checkpoint(self) -> str:
        """The pre-trained checkpoint students are cut from (student.init: pretrained)."""
        return self.student.init_checkpoint or self.teacher.checkpoint

    def patient_layers(self, teacher_depth: int) -> list[int]:
        """Every teacher layer that a patient strategy of student.strategies pairs at a depth of
        student.depths: the layers the teacher cache stores.

        Read from the strategies' layer maps only, whatever their weights: the cache stage's DVC
        inputs are student.strategies and student.depths, so a beta sweep (the paper's main axis)
        reuses one cache, and a beta raised from 0 finds its layers already stored."""
        return sorted({
            layer
            for name in self.student.strategies if registry.get_strategy(name).patient
            for depth in self.student.depths
            for layer in registry.get_strategy(name).teacher_layers(teacher_depth, depth)
        })

    def student_learning_rate(self, strategy: str, task: str | None = None) -> float:
        """The strategy's own rate, else the task's override, else student.learning_rate."""
        student = self.student.for_task(task) if task else self.student
        return self.strategies[strategy].learning_rate or student.learning_rate


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    # A section validator names its field first ("glue_dir: ..."): make it one dotted key.
    field, sep, rest = msg.partition(": ")
    if key and sep and field.isidentifier():
        key, msg = f"{key}.{field}", rest
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{key}: {msg}{shown}" if key else f"{msg}{shown}"


def parse_params(raw: dict) -> Params:
    custom = ((raw.get("data") or {}).get("custom_tasks") or {}) if isinstance(raw, dict) else {}
    tasks = tuple(TASKS) + tuple(custom if isinstance(custom, dict) else ())
    try:
        return Params.model_validate(raw, context={"tasks": tasks})
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def _yaml_error(path: Path, err: Exception) -> str:
    """`<file>:<line>:<col>: <problem>` (1-based) for a file that is not valid YAML."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    return f"{path}{where}: invalid YAML: {detail}"


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    # YAML 1.2, as DVC and pkd-preset read and write it: a plain `no` or `on` is text, not a boolean.
    try:
        with path.open() as fh:
            raw = YAML(typ="safe").load(fh) or {}
    except YAMLError as err:
        raise ConfigError(_yaml_error(path, err)) from None
    try:
        return parse_params(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None

