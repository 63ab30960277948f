"""Training one student (task x strategy x depth x seed): the distill stage's work, as a library call.

`plan_student` resolves everything that defines the run from params (its loss,
its teacher cache, the settings MLflow records and the resume key);
`train_student` trains it. The stage and the benchmarks call these, so a
benchmark measures what the pipeline runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datasets import DatasetDict

from pkd.cache.format import MANIFEST, TeacherCache, load_cache
from pkd.data.tasks import TaskInfo
from pkd.errors import ConfigError
from pkd.method import strategies as registry
from pkd.method.losses import LossConfig
from pkd.models.loading import build_student, checkpoint_depth, load_tokenizer
from pkd.models.precision import resolve_precision
from pkd.training.resume_key import config_hash
from pkd.training.train import random_subset, train_model

if TYPE_CHECKING:  # read by attribute: training loads no params schema
    from pkd.pipeline.params import Params


@dataclass
class StudentPlan:
    task: TaskInfo
    strategy: str
    depth: int
    seed: int
    loss: LossConfig
    cache: TeacherCache | None
    precision: str
    settings: dict  # what the run reads: MLflow params, and (hashed) the resume key
    run_key: str

    @property
    def tags(self) -> dict:
        return {"task": self.task.name, "strategy": self.strategy, "depth": self.depth, "seed": self.seed}


def loss_config(params: Params, strategy: str, task: str, depth: int, teacher_depth: int) -> LossConfig:
    """The loss a student of (strategy, task, depth) trains with: its terms, weights and layer map.

    The one place that decides whether a student distils (LossConfig.distills): a
    weight of 0 switches its term off, whatever the strategy."""
    knobs, spec = params.strategies[strategy], registry.get_strategy(strategy)
    layers = spec.teacher_layers(teacher_depth, depth) if knobs.beta > 0 else None
    return LossConfig(
        alpha=knobs.alpha,
        beta=knobs.beta,
        temperature=knobs.temperature,
        matched_layers=tuple(layers) if layers else None,
        kd_reduction=params.student.kd_reduction,
        normalize_patience=params.student.patience_normalized(task, depth),
        projection=knobs.projection,
    )


def plan_student(
    params: Params, task: TaskInfo, strategy: str, depth: int, seed: int, *,
    splits: DatasetDict, prepared_dir: Path, teacher_dir: Path, cache_dir: Path,
) -> StudentPlan:
    """Resolve one student's run; refuses an unlisted strategy or a stale cache before any work."""
    if strategy not in params.student.strategies:
        raise ConfigError(f"student.strategies: '{strategy}' is not listed; allowed: {params.student.strategies}")
    student = params.student.for_task(task.name)
    loss = loss_config(params, strategy, task.name, depth, checkpoint_depth(params.teacher.checkpoint))
    cache = None
    if loss.distills:
        cache = load_cache(cache_dir, "train", dataset=splits["train"], teacher_dir=teacher_dir, pooling=params.pooling)
        cache.require_layers(loss.patient_layers)
    precision = resolve_precision(params.precision)
    settings = {
        "student": student.model_dump(exclude={"seeds"}),  # student.seeds lists the matrix; this run is one seed
        "strategy": params.strategies[strategy].model_dump(),
        "matched_layers": loss.patient_layers,
        "seed": seed,
        "pooling": params.pooling,
        "normalize_patience": loss.normalize_patience,
        "precision": precision,
    }
    # A leftover checkpoint is resumed only by the same run: same params, data, teacher and cache.
    inputs = [prepared_dir]
    if cache is not None or student.init == "finetuned":
        inputs.append(teacher_dir)
    if cache is not None:
        inputs.append(cache_dir / MANIFEST)  # names the teacher, data and dtype
    run_key = config_hash(settings, params.teacher.checkpoint, params.seed, *inputs)
    return StudentPlan(task, strategy, depth, seed, loss, cache, precision, settings, run_key)


def train_student(
    plan: StudentPlan, params: Params, splits: DatasetDict, *, teacher_dir: Path, checkpoint_dir: Path,
    model_out: Path, history_out: Path, tracker=None,
) -> list[dict]:
    """Train the planned student from its pre-trained (or fine-tuned teacher's) first layers; returns its history."""
    task, student = plan.task, params.student.for_task(plan.task.name)
    return train_model(
        build_student(params.student_checkpoint(), plan.depth, task, student.init, teacher_dir, seed=plan.seed,
                      pooling=params.pooling),
        load_tokenizer(params.teacher.checkpoint),
        task=task,
        train=random_subset(splits["train"], student.max_train_samples, params.seed),
        dev=splits[task.dev_splits[0]],
        params=student,
        learning_rate=params.student_learning_rate(plan.strategy, task.name),
        seed=plan.seed,
        checkpoint_dir=checkpoint_dir,
        model_out=model_out,
        history_out=history_out,
        tracker=tracker,
        precision=plan.precision,
        loss=plan.loss,
        cache=plan.cache,
    )
