"""Running one training job (teacher or student) with Trainer.

Shared by the teacher and distill stages: arguments from params, evaluation on
dev and on a fixed train subset every epoch (the paper's overfitting figure),
resume from the last epoch checkpoint after a crash, and an atomic final save.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pkd.data.tasks import TaskInfo
from pkd.evaluation.metrics import glue_metrics, logits_to_predictions
from pkd.io import atomic_dir, write_json
from pkd.method.losses import LossConfig
from pkd.method.projection import detach_projection
from pkd.method.trainer import DistillationTrainer
from pkd.models.families import MODEL_INPUTS, model_inputs
from pkd.models.precision import trainer_flags

if TYPE_CHECKING:  # a params section, read by attribute: training loads no params schema
    from pkd.pipeline.params import TrainParams

# Columns a training dataset keeps; texts stay in the prepared data only.
TRAIN_COLUMNS = ("idx", "input_ids", "token_type_ids", "attention_mask", "labels", "length")


def training_view(dataset: Dataset, inputs: tuple[str, ...] = MODEL_INPUTS) -> Dataset:
    """TRAIN_COLUMNS of `dataset`, with only the model `inputs` its model takes (pkd.models.families.model_inputs)."""
    dataset = dataset.rename_column("label", "labels") if "label" in dataset.column_names else dataset
    keep = [c for c in TRAIN_COLUMNS if c in dataset.column_names and (c in inputs or c not in MODEL_INPUTS)]
    return dataset.select_columns(keep)


def random_subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    """A fixed random subset of `size` examples (all of them if size is None or larger)."""
    if size is None or len(dataset) <= size:
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))


def by_length(dataset: Dataset) -> Dataset:
    """`dataset` sorted by its `length` column (stable: ties keep their order)."""
    if "length" not in dataset.column_names:
        return dataset
    return dataset.select(np.argsort(np.asarray(dataset["length"]), kind="stable"))


def training_arguments(
    params: TrainParams, *, output_dir: Path, seed: int, learning_rate: float, precision: str = "fp32"
) -> TrainingArguments:
    """`precision`: fp32 | bf16 | fp16, already resolved for the device (pkd.models.precision)."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=max(params.batch_size, 64),
        learning_rate=learning_rate,
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        weight_decay=params.weight_decay,
        seed=seed,
        data_seed=seed,
        # Shuffled, length-grouped batches with per-batch padding (the authors
        # pad everything to 128 and never shuffle).
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        # The NaN/Inf filter tests every step's loss on the host: a device sync per step.
        logging_nan_inf_filter=False,
        **trainer_flags(precision),
    )


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint whose trainer_state.json (written last by Trainer) is intact.

    A process killed while saving leaves a checkpoint without it, or with a
    truncated one; that checkpoint is skipped, and the previous one is used.
    """
    if not checkpoint_dir.is_dir():
        return None
    candidates = sorted(
        checkpoint_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True
    )
    for candidate in candidates:
        try:
            json.loads((candidate / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(candidate)
    return None


def epoch_history(log_history: list[dict], main_metric: str) -> list[dict]:
    """One record per epoch from Trainer's log history (kept in checkpoints, so resume-safe)."""
    by_epoch: dict[int, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        epoch = round(entry["epoch"])
        record = by_epoch.setdefault(epoch, {"epoch": epoch})
        for key, value in entry.items():
            if key.endswith(("_runtime", "_per_second")):
                continue  # wall-clock figures would make the file differ between identical runs
            if key.startswith("eval_train_"):
                record[f"train_{key.removeprefix('eval_train_')}"] = value
            elif key.startswith("eval_dev_"):
                record[f"dev_{key.removeprefix('eval_dev_')}"] = value
            elif key == "loss" or key.startswith("loss_"):
                record[key] = value
    history = []
    for epoch in sorted(by_epoch):
        record = by_epoch[epoch]
        # Common names for plots: the task's main metric on train and dev.
        if f"train_{main_metric}" in record:
            record["train_accuracy" if main_metric == "accuracy" else "train_score"] = record[f"train_{main_metric}"]
        if f"dev_{main_metric}" in record:
            record["dev_accuracy" if main_metric == "accuracy" else "dev_score"] = record[f"dev_{main_metric}"]
        history.append({k: record[k] for k in sorted(record, key=lambda k: (k != "epoch", k))})
    return [h for h in history if len(h) > 1]


class EpochTrackingCallback(TrainerCallback):
    """Sends each epoch's record (epoch_history) to a tracker as soon as Trainer logs it.

    `tracker` has `log_history(records)`, as pkd.pipeline.tracking's StageRun. Each
    (epoch, metric) point is sent once, so MLflow shows a run's curves while it
    trains; after a resume, the epochs done before the crash are sent at the first log.
    """

    def __init__(self, tracker, main_metric: str):
        self.tracker, self.main_metric = tracker, main_metric
        self.sent: dict[tuple[int, str], float] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            self.flush(state.log_history)

    def flush(self, log_history: list[dict]) -> None:
        records = []
        for record in epoch_history(log_history, self.main_metric):
            epoch = record["epoch"]
            fresh = {k: v for k, v in record.items() if k != "epoch" and self.sent.get((epoch, k)) != v}
            if fresh:
                records.append({"epoch": epoch, **fresh})
                self.sent.update({(epoch, k): v for k, v in fresh.items()})
        if records:
            self.tracker.log_history(records)


class _EpochLossTrainer(DistillationTrainer):
    """Adds the epoch means of the three loss terms to each epoch's training log."""

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # the epoch-end training log, not an evaluation
            logs = {**logs, **self.pop_epoch_losses()}
        super().log(logs, *args, **kwargs)


def train_model(
    model,
    tokenizer,
    *,
    task: TaskInfo,
    train: Dataset,
    dev: Dataset,
    params: TrainParams,
    learning_rate: float,
    seed: int,
    checkpoint_dir: Path,
    model_out: Path,
    history_out: Path,
    tracker=None,
    precision: str = "fp32",
    loss: LossConfig = LossConfig(),
    cache=None,
) -> list[dict]:
    """Train, resuming from `checkpoint_dir` if a previous run was killed; save atomically.

    `loss` and `cache` (a pkd.cache.format.TeacherCache, needed when loss.distills)
    go to DistillationTrainer; the default is fine-tuning on labels. Returns the
    per-epoch history also written to `history_out`. `tracker` (a pkd.pipeline.tracking
    StageRun) receives each epoch's metrics at that epoch's end.
    """
    inputs = model_inputs(model)
    train = training_view(train, inputs)
    # A fixed random subset of train, scored each epoch for train accuracy. Both sets are scored
    # in length order, as pkd.evaluation.evaluate does: batches padded to their longest example waste up to
    # half the forward pass on padding in dataset order, and the metrics do not depend on order.
    eval_sets = {"dev": by_length(training_view(dev, inputs)),
                 "train": by_length(random_subset(train, params.train_eval_samples, seed))}

    def compute_metrics(prediction):
        preds = logits_to_predictions(prediction.predictions, task.is_regression)
        return glue_metrics(task.metric_names, preds, prediction.label_ids)

    trainer = _EpochLossTrainer(
        model=model,
        args=training_arguments(params, output_dir=checkpoint_dir, seed=seed, learning_rate=learning_rate,
                                precision=precision),
        train_dataset=train,
        eval_dataset=eval_sets,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        is_regression=task.is_regression,
        loss=loss,
        cache=cache,
    )
    tracking = EpochTrackingCallback(tracker, task.main_metric) if tracker is not None else None
    if tracking is not None:
        trainer.add_callback(tracking)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(checkpoint_dir))
    if tracking is not None and trainer.is_world_process_zero():
        tracking.flush(trainer.state.log_history)
    history = epoch_history(trainer.state.log_history, task.main_metric)
    if trainer.is_world_process_zero():
        detach_projection(trainer.model)  # a training aid: the saved classifier never holds it
        with atomic_dir(model_out) as tmp:
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        write_json(history_out, history)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return history


def score_model(model, tokenizer, *, task: TaskInfo, train: Dataset, dev: Dataset, train_eval_samples: int,
                seed: int, model_out: Path, history_out: Path, precision: str = "fp32") -> list[dict]:
    """A model that is used as is (an already fine-tuned teacher): scored on dev and on the
    same train subset a trained model is, saved like one, with a one-record history (epoch 0)."""
    from pkd.evaluation.evaluate import predict_logits

    collator = DataCollatorWithPadding(tokenizer)
    log = {"epoch": 0}
    for name, split in (("dev", dev), ("train", random_subset(train, train_eval_samples, seed))):
        logits = predict_logits(model, split, collator, desc=f"score {task.name} {name}", precision=precision)
        preds = logits_to_predictions(logits, task.is_regression)
        log.update({f"eval_{name}_{k}": v for k, v in glue_metrics(task.metric_names, preds, split["label"]).items()})
    history = epoch_history([log], task.main_metric)
    # Under torchrun every process scores (no Trainer, no process group: it is quick), one saves:
    # two processes replacing the same folder would race.
    if os.environ.get("RANK", "0") == "0":
        with atomic_dir(model_out) as tmp:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        write_json(history_out, history)
    return history
