"""The pipeline's distillation step, driven one batch at a time (not a benchmark itself).

The benchmarks time what the distill stage runs, so nothing here re-implements it:
the loss is `pkd.training.distill.loss_config`, the student is `pkd.models.loading.build_student` with
params.yaml's pooling, the cache is written by `build_teacher_cache` and opened by
`load_cache`, and one step is DistillationTrainer's own: Trainer's optimizer
(`create_optimizer`), `training_step` (forward, `compute_loss`, backward), gradient
clipping at its `max_grad_norm`, `optimizer.step()` and `zero_grad()`, in the order
Trainer's loop runs them. Only the loop over batches is the benchmark's, so that a
fixed list of batches can be timed and replayed from the same initial weights.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import ROOT, Timer

from pkd.allowed_values import POOLINGS
from pkd.cache.build import build_teacher_cache
from pkd.cache.format import TeacherCache, load_cache
from pkd.data.tasks import TaskInfo
from pkd.method import strategies
from pkd.method.losses import LossConfig
from pkd.method.pooling import model_pooling
from pkd.method.trainer import DistillationTrainer
from pkd.models.families import MODEL_INPUTS
from pkd.models.loading import build_student, build_teacher
from pkd.models.precision import autocast
from pkd.pipeline.params import Params, load_params
from pkd.training.distill import loss_config
from pkd.training.train import training_arguments, training_view

DISTILLING = [name for name in strategies.names() if strategies.get_strategy(name).reads_teacher]


def add_distill_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distillation (defaults from params.yaml, as the distill stage reads them)")
    group.add_argument("--params", default=str(ROOT / "params.yaml"), help="[params.yaml]")
    group.add_argument("--strategy", default=strategies.PKD, choices=DISTILLING,
                       help=f"its alpha, beta, T, layer map and learning rate come from --params [{strategies.PKD}]")
    group.add_argument("--pooling", choices=POOLINGS, default=None, help="[--params' pooling]")
    group.add_argument("--lr", type=float, default=None, help="[the strategy's learning rate in --params]")


def bench_params(args) -> Params:
    """--params, with --pooling in place of its pooling when given."""
    params = load_params(args.params)
    return params.model_copy(update={"pooling": args.pooling}) if getattr(args, "pooling", None) else params


def training_rows(dataset) -> list[dict]:
    """The columns the distill stage trains on (pkd.training.train.training_view), one dict per example."""
    return list(training_view(dataset))


def batches_of(rows: list[dict], order: list[int], collator, batch_size: int) -> list[dict]:
    """A fixed list of collated batches, `order` cut into consecutive batches."""
    return [collator([rows[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]


def train_split_cache(
    teacher, task: TaskInfo, train, collator, workdir: Path, *, layers: list[int] | None, dtype: str,
    batch_size: int, precision: str, device: torch.device,
) -> tuple[TeacherCache, float]:
    """The teacher_cache stage's work on the training split alone, then the distill stage's reader.

    Returns the opened cache and the build time. The cache's rows are read from
    `workdir` on every lookup: keep it until the last step.
    """
    teacher_dir, cache_dir = workdir / "teacher", workdir / "cache"
    teacher.save_pretrained(teacher_dir)  # the manifest names the teacher by its weights' hash
    # No dev splits: the benchmarks time training, which reads the train split only.
    train_only = dataclasses.replace(task, dev_splits=())
    with Timer(device) as build:
        build_teacher_cache(teacher, train_only, {"train": train}, collator, cache_dir, teacher_dir=teacher_dir,
                            layers=layers or [], dtype=dtype, batch_size=batch_size, precision=precision)
    cache = load_cache(cache_dir, "train", dataset=train, teacher_dir=teacher_dir, pooling=model_pooling(teacher))
    return cache, build.seconds


def distill_trainer(
    student, params: Params, loss: LossConfig, cache: TeacherCache | None, *, task: TaskInfo, seed: int,
    learning_rate: float, precision: str, device: torch.device, output_dir: Path,
) -> DistillationTrainer:
    """The distill stage's trainer: its TrainingArguments (pkd.training.train.training_arguments) and loss."""
    args = training_arguments(params.student.for_task(task.name), output_dir=output_dir, seed=seed,
                              learning_rate=learning_rate, precision=precision)
    # No dev set is evaluated between timed steps; Trainer refuses epoch evaluation without one.
    changes = {"eval_strategy": "no"}
    if device.type == "cpu":
        changes["use_cpu"] = True  # Trainer would take a visible GPU
    args = dataclasses.replace(args, **changes)
    if args.device.type != device.type:
        raise SystemExit(f"error: Trainer would run on {args.device}, not the requested {device}")
    return DistillationTrainer(model=student, args=args, loss=loss, cache=cache, is_regression=task.is_regression)


class TrainerSteps:
    """DistillationTrainer's training step on one batch at a time; `reset` returns to the initial state.

    The model and optimizer are prepared by the trainer's accelerator as Trainer's
    training loop prepares them (that is where bf16/fp16 autocast is attached). The
    autocast is fixed when a model is prepared, while accelerate keeps one precision
    state per process: build each TrainerSteps before creating the next trainer.
    """

    def __init__(self, trainer: DistillationTrainer, seed: int):
        self.trainer, self.seed = trainer, seed
        self.model, self.optimizer = trainer.accelerator.prepare(trainer.model, trainer.create_optimizer())
        # Set by Trainer's loop for each step: the batches of one accumulation window (one here).
        trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
        self._initial = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(self.optimizer.state_dict())

    def reset(self) -> None:
        """Initial weights, a fresh optimizer state and the same dropout masks."""
        weights, optimizer_state = self._initial
        self.trainer.model.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer_state)
        self.model.zero_grad(set_to_none=True)
        self.trainer.pop_epoch_losses()
        torch.manual_seed(self.seed)

    def forward_backward(self, batch: dict) -> torch.Tensor:
        """Forward, the pipeline's loss (DistillationTrainer.compute_loss) and backward, as Trainer runs them."""
        return self.trainer.training_step(self.model, dict(batch))

    def update(self) -> None:
        """What Trainer does after backward: clip the gradient norm, step the optimizer, zero the gradients."""
        if self.trainer.args.max_grad_norm > 0:
            self.trainer.accelerator.clip_grad_norm_(self.model.parameters(), self.trainer.args.max_grad_norm)
        self.optimizer.step()
        self.model.zero_grad()

    def step(self, batch: dict) -> None:
        self.forward_backward(batch)
        self.update()


@dataclass
class DistillBench:
    """What a distillation benchmark times: the trainer's steps, and the teacher and loss behind them."""

    steps: TrainerSteps
    teacher: torch.nn.Module
    loss: LossConfig
    learning_rate: float
    cache_seconds: float


def distill_bench(
    args, params: Params, task: TaskInfo, train, collator, workdir: Path, *, depth: int, precision: str,
    device: torch.device,
) -> DistillBench:
    """The default checkpoint's teacher (fresh head) and --student-depth student, the cache, the trainer.

    The cache's build is timed after one warm-up teacher forward, so it does not
    pay for first-call setup. Keep `workdir` until the last step.
    """
    teacher = build_teacher(args.checkpoint, task, seed=args.seed, pooling=params.pooling).to(device).eval()
    student = build_student(args.checkpoint, depth, task, seed=args.seed, pooling=params.pooling).to(device)
    loss = loss_config(params, args.strategy, task.name, depth, teacher.config.num_hidden_layers)
    learning_rate = args.lr or params.student_learning_rate(args.strategy, task.name)
    warm = collator(training_rows(train.select(range(min(8, len(train))))))
    with torch.no_grad(), autocast(precision, device):
        teacher(**{k: v.to(device) for k, v in warm.items() if k in MODEL_INPUTS})
    cache, seconds = train_split_cache(
        teacher, task, train, collator, workdir, layers=loss.patient_layers,
        dtype=getattr(args, "cache_dtype", None) or params.teacher.cache_dtype,
        batch_size=getattr(args, "cache_batch_size", None) or params.teacher.cache_batch_size,
        precision=precision, device=device)
    trainer = distill_trainer(student, params, loss, cache, task=task, seed=args.seed, learning_rate=learning_rate,
                              precision=precision, device=device, output_dir=workdir / "trainer")
    return DistillBench(TrainerSteps(trainer, args.seed), teacher, loss, learning_rate, seconds)
