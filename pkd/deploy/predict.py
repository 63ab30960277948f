"""Label sentences (or sentence pairs) with a saved or exported model: the library side of `pkd predict`.

`Predictor` accepts any model directory the pipeline wrote (teacher or
student, [CLS] or mean pooling: read through pkd.models.loading' loader), an export
directory (`model.onnx` is used), or one `.onnx` file inside an export
directory (e.g. `model_int8.onnx`). Task, label names and pooling come from
the directory's config.json (`pkd_task`, `id2label`, `pkd_pooling`).

Input: one example per line, a sentence or, for pair tasks, two sentences
separated by a tab. Examples are tokenised, sorted by length and padded per
batch (dynamic padding); outputs come back in input order.
"""
from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pkd.data import DataFormatError, get_task
from pkd.data.custom import task_info_from_dict
from pkd.errors import ConfigError
from pkd.models.onnx import ONNX_FILE, OnnxClassifier


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def resolve_model(path: str | Path) -> tuple[Path, Path | None]:
    """(model directory, ONNX file or None for PyTorch) for a --model argument."""
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        model_dir, onnx_file = path.parent, path
    elif path.is_dir():
        model_dir, onnx_file = path, (path / ONNX_FILE if (path / ONNX_FILE).is_file() else None)
    else:
        raise FileNotFoundError(f"{path}: model directory not found")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json: not a model directory saved by pkd")
    if onnx_file is None and not any((model_dir / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise FileNotFoundError(f"{model_dir}: no model.safetensors or {ONNX_FILE}: not a saved or exported model")
    return model_dir, onnx_file


class Predictor:
    """A saved (PyTorch) or exported (ONNX Runtime) classifier with its tokenizer."""

    def __init__(self, model: str | Path, task: str | None = None, threads: int | None = None):
        from transformers import AutoConfig, AutoTokenizer

        import pkd.models.mean_pooled  # noqa: F401  (registers the mean-pooled model's config type with AutoConfig)

        self.model_dir, onnx_file = resolve_model(model)
        config = AutoConfig.from_pretrained(str(self.model_dir))
        name = task or getattr(config, "pkd_task", None)
        if not name:
            raise ConfigError(f"{self.model_dir / 'config.json'}: no pkd_task (saved before tasks were recorded); pass --task")
        try:
            recorded = getattr(config, "pkd_task_info", None)  # a custom task describes itself
            self.task = task_info_from_dict(recorded) if recorded and not task else get_task(name)
        except ValueError as err:
            raise ConfigError(f"task: {err}") from None
        self.num_labels = config.num_labels
        self.labels = [] if self.task.is_regression else [str(config.id2label[i]) for i in range(self.num_labels)]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.max_length = min(getattr(config, "max_position_embeddings", 512), 512)
        self.runtime = "onnx" if onnx_file else "pytorch"
        self._onnx_file, self._threads, self._model = onnx_file, threads, None

    @property
    def model(self):
        """The ONNX Runtime session or PyTorch model, loaded on first use (input is checked first)."""
        if self._model is None:
            if self._onnx_file:
                self._model = OnnxClassifier(self._onnx_file, self._threads)
            else:
                import torch
                from transformers.utils import logging as hf_logging

                from pkd.models.loading import load_classifier

                if self._threads:
                    torch.set_num_threads(self._threads)
                hf_logging.disable_progress_bar()  # stderr carries errors only
                self._model = load_classifier(self.model_dir).eval()
        return self._model

    def _run(self, batch: dict) -> np.ndarray:
        if self.runtime == "onnx":
            return self.model({k: np.asarray(v) for k, v in batch.items()})
        import torch

        from pkd.models.families import model_inputs

        inputs = model_inputs(self.model)  # a tokenizer may make token_type_ids that the model does not take
        features = {k: torch.as_tensor(np.asarray(v)) for k, v in batch.items() if k in inputs}
        with torch.no_grad():
            return self.model(**features).logits.float().numpy()

    def logits(self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None, batch_size: int = 32) -> np.ndarray:
        """Logits [n, C] in input order; batches of length-sorted examples, padded per batch."""
        if self.task.has_pair != (texts_b is not None):
            raise ValueError(f"task {self.task.name} takes {'sentence pairs' if self.task.has_pair else 'single sentences'}")
        enc = self.tokenizer(list(texts_a), None if texts_b is None else list(texts_b), truncation=True, max_length=self.max_length)
        rows = [{k: enc[k][i] for k in enc} for i in range(len(texts_a))]
        order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")
        out = np.zeros((len(rows), self.num_labels), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = self.tokenizer.pad([rows[i] for i in chosen], return_tensors="np")
            out[chosen] = self._run(dict(batch))
        return out

    def predict(self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None, batch_size: int = 32):
        """(label names or scores, probabilities [n, C] or None for regression)."""
        logits = self.logits(texts_a, texts_b, batch_size)
        if self.task.is_regression:
            return logits[:, 0].tolist(), None
        probs = _softmax(logits)
        return [self.labels[i] for i in probs.argmax(-1)], probs


def read_examples(lines: Sequence[str], source: str, has_pair: bool, task: str) -> tuple[list[str], list[str] | None]:
    """Texts from input lines: one sentence, or a tab-separated pair, per line; errors name the line."""
    lines = [line.rstrip("\r\n") for line in lines]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    while lines and not lines[-1].strip():  # trailing blank lines
        lines.pop()
    if not lines:
        raise DataFormatError(source, 1, "empty input: expected one example per line")
    expected = 2 if has_pair else 1
    texts_a, texts_b = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if not line.strip():
            raise DataFormatError(source, number, "empty line")
        if len(fields) != expected:
            kind = "a sentence pair (2 tab-separated fields)" if has_pair else "one sentence (no tab)"
            raise DataFormatError(source, number, f"task {task} takes {kind}, got {len(fields)} field(s)")
        texts_a.append(fields[0])
        if has_pair:
            texts_b.append(fields[1])
    return texts_a, (texts_b if has_pair else None)


def _read_lines(path: str) -> tuple[list[str], str]:
    if path == "-":
        return sys.stdin.read().splitlines(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8").splitlines(), path
    except IsADirectoryError:
        raise FileNotFoundError(f"{path}: is a directory, not an input file") from None
    except UnicodeDecodeError as err:
        line = Path(path).read_bytes()[: err.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"not UTF-8 text ({err.reason})") from None


def write_label_probabilities(out, predictor: Predictor, labels, probs) -> None:
    """`pkd predict`'s TSV: each example's label and class probabilities (regression: its score)."""
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    if probs is None:
        writer.writerow(["score"])
        writer.writerows([f"{s:.4f}"] for s in labels)
        return
    writer.writerow(["label", *(f"prob_{name}" for name in predictor.labels)])
    for label, row in zip(labels, probs):
        writer.writerow([label, *(f"{p:.4f}" for p in row)])


def predict_file(model: str, input: str, output: str, task: str | None = None, batch_size: int = 32) -> int:
    """`pkd predict`: returns the number of examples labelled."""
    predictor = Predictor(model, task)
    lines, source = _read_lines(input)
    texts_a, texts_b = read_examples(lines, source, predictor.task.has_pair, predictor.task.name)
    labels, probs = predictor.predict(texts_a, texts_b, batch_size)
    if output == "-":
        write_label_probabilities(sys.stdout, predictor, labels, probs)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with open(output, "w", newline="", encoding="utf-8") as fh:
            write_label_probabilities(fh, predictor, labels, probs)
    return len(texts_a)
