"""Inference timing of the teacher and each student depth, side by side.

Speed depends on the architecture (depth, width, sequence length), not on the
trained weights, so every depth is timed once, on the same inputs, in one
process, with the models' repeats interleaved so that background load hits
them all alike. Reported: parameters, latency at batch 1 and throughput at
batch 32, on real dev lengths and at a fixed length of 128, as median and
quartiles over repeats after warm-up, plus the speed-up over the teacher.
Every model is built with the pipeline's pooling (no BERT pooler under
`pooling: mean`), so what is timed is what the pipeline ships. With onnx=True,
ONNX Runtime fp32 and int8 rows join them: what a user would ship.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, DataCollatorWithPadding

from pkd.models.families import model_inputs
from pkd.models.loading import untrained_classifier
from pkd.models.precision import autocast

FIXED_LENGTH = 128


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(dev_features: list[dict], collator: DataCollatorWithPadding, batch_size: int, fixed_length: int | None):
    """Padded batches of dev examples in dataset order; or of fixed-length inputs."""
    if fixed_length:
        n = len(dev_features)
        # A sentence of the tokenizer's own words and special tokens ([CLS] ... [SEP], <s> ... </s>).
        words = collator.tokenizer(" ".join(["the"] * fixed_length), truncation=True, max_length=fixed_length)
        ids = torch.tensor([words["input_ids"]], dtype=torch.long).repeat(n, 1)
        mask = torch.ones_like(ids)
        return [
            {"input_ids": ids[i : i + batch_size], "attention_mask": mask[i : i + batch_size]}
            for i in range(0, n, batch_size)
        ]
    return [collator(dev_features[i : i + batch_size]) for i in range(0, len(dev_features), batch_size)]


@torch.no_grad()
def _run_once(model, batches, device, precision: str = "fp32") -> float:
    inputs = model_inputs(model)
    _sync(device)
    start = time.perf_counter()
    with autocast(precision, device):
        for batch in batches:
            model(**{k: v.to(device, non_blocking=True) for k, v in batch.items() if k in inputs})
    _sync(device)
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, float]:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(q50), "p25": float(q25), "p75": float(q75)}


def _onnx_variants(model, workdir: Path, threads: int, recipe: str) -> dict:
    """{runtime: (ONNX Runtime session, size in MB)} for fp32 and int8 (by `recipe`) exports of `model`."""
    from pkd.models.onnx import OnnxClassifier, export_dir, size_mb

    fp32, int8, _ = export_dir(model, workdir, recipe=recipe)
    return {"onnx_fp32": (OnnxClassifier(fp32, threads), size_mb(fp32)),
            "onnx_int8": (OnnxClassifier(int8, threads), size_mb(int8))}


def _run_onnx(session, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        session(batch)
    return time.perf_counter() - start


RUNTIMES = ("pytorch", "onnx_fp32", "onnx_int8")  # the record lists PyTorch rows first


@dataclass
class _Models:
    """The models to time, by (runtime, depth): runners (PyTorch models or ONNX sessions), sizes on disk."""

    depths: list[int]  # the teacher's first, then the students', deepest first
    runners: dict = field(default_factory=dict)
    size_mb: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)  # by depth

    @property
    def order(self) -> list[tuple[str, int]]:
        return sorted(self.runners, key=lambda key: (RUNTIMES.index(key[0]), self.depths.index(key[1])))


def _build_models(checkpoint_dir: str, student_checkpoint_dir: str | None, depths: list[int], num_labels: int, *,
                  pooling: str, onnx: bool, int8_recipe: str, device: torch.device, workdir: Path) -> _Models:
    """The teacher and a student of each depth, random weights (speed does not depend on their values)."""
    teacher_depth = AutoConfig.from_pretrained(checkpoint_dir).num_hidden_layers
    models = _Models([teacher_depth, *sorted(set(depths), reverse=True)])
    for depth in models.depths:
        source = checkpoint_dir if depth == teacher_depth else (student_checkpoint_dir or checkpoint_dir)
        model = untrained_classifier(source, depth=depth, num_labels=num_labels, pooling=pooling).eval()
        models.parameters[depth] = sum(p.numel() for p in model.parameters())
        model.save_pretrained(workdir / f"pt-{depth}")
        models.size_mb[("pytorch", depth)] = (workdir / f"pt-{depth}" / "model.safetensors").stat().st_size / 1e6
        if onnx:
            for runtime, (session, size) in _onnx_variants(model, workdir / f"onnx-{depth}", torch.get_num_threads(),
                                                       int8_recipe).items():
                models.runners[(runtime, depth)] = session
                models.size_mb[(runtime, depth)] = size
        models.runners[("pytorch", depth)] = model.to(device)
    return models


def _workloads(dev_features: list[dict], collator: DataCollatorWithPadding) -> dict[str, tuple[list, int]]:
    """{name: (batches, examples)}: batch-1 latency and batch-32 throughput, at dev lengths and at 128."""
    n_b1 = min(len(dev_features), 64)  # batch-1 latency over this many examples
    return {
        "latency_b1_dev_ms": (make_batches(dev_features[:n_b1], collator, 1, None), n_b1),
        "throughput_b32_dev": (make_batches(dev_features, collator, 32, None), len(dev_features)),
        "latency_b1_len128_ms": (make_batches(dev_features[:n_b1], collator, 1, FIXED_LENGTH), n_b1),
        "throughput_b32_len128": (make_batches(dev_features, collator, 32, FIXED_LENGTH), len(dev_features)),
    }


def _measure(models: _Models, workloads: dict, *, warmup: int, repeats: int, device: torch.device,
             precision: str) -> dict:
    """{(runtime, depth): {workload: [ms per example | examples per s, one per repeat after warm-up]}}."""
    numpy_batches = {k: [{n: t.numpy() for n, t in b.items()} for b in batches] for k, (batches, _) in workloads.items()}
    samples = {key: {k: [] for k in workloads} for key in models.order}
    for repeat in range(warmup + repeats):
        for name, (batches, n) in workloads.items():
            for key in models.order:  # interleaved: same conditions for every model
                runner = models.runners[key]
                if key[0] == "pytorch":
                    seconds = _run_once(runner, batches, device, precision)
                else:
                    seconds = _run_onnx(runner, numpy_batches[name])
                if repeat >= warmup:
                    samples[key][name].append(seconds / n * 1000 if name.startswith("latency") else n / seconds)
    return samples


def _model_records(models: _Models, samples: dict) -> list[dict]:
    """One record per (runtime, depth): summaries, speed-ups over the PyTorch teacher, size, layer ratio."""
    teacher_depth = models.depths[0]
    teacher = {k: _summary(v)["median"] for k, v in samples[("pytorch", teacher_depth)].items()}
    records = []
    for key in models.order:
        runtime, depth = key
        summary = {k: _summary(v) for k, v in samples[key].items()}
        speedup = {
            k.removesuffix("_ms"): (teacher[k] / summary[k]["median"] if k.startswith("latency") else summary[k]["median"] / teacher[k])
            for k in summary
        }
        records.append({
            "model": "teacher" if depth == teacher_depth else f"student-{depth}",
            "runtime": runtime,
            "depth": depth,
            "parameters": models.parameters[depth],
            "size_mb": models.size_mb[key],
            **summary,
            "speedup": speedup,
            "layer_ratio": teacher_depth / depth,
        })
    return records


def time_depths(
    checkpoint_dir: str,
    depths: list[int],
    dev_features: list[dict],
    collator: DataCollatorWithPadding,
    num_labels: int,
    *,
    warmup: int,
    repeats: int,
    pooling: str,
    device: str | None = None,
    student_checkpoint_dir: str | None = None,
    onnx: bool = False,
    int8_recipe: str = "per_channel",
    precision: str = "fp32",
) -> dict:
    """Time the teacher (its full depth) and a student of each depth; return the timing record.

    Students have the architecture of `student_checkpoint_dir` (their init checkpoint,
    which may be wider or narrower than the teacher) when it is given; every model
    pools as `pooling` says (cls | mean), as the pipeline's models do.
    onnx=True adds ONNX Runtime fp32 and int8 (dynamic quantisation by `int8_recipe`) rows for every
    depth, on CPU, with as many threads as PyTorch. Speed-ups are always relative
    to the PyTorch fp32 teacher. size_mb: weights on disk (safetensors or .onnx).
    `precision` (fp32 | bf16 | fp16, resolved for the device) is the PyTorch forward's autocast.
    warmup and repeats: params.yaml's `timing` section holds their defaults.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workdir = Path(tempfile.mkdtemp(prefix="pkd-timing-"))
    try:
        models = _build_models(checkpoint_dir, student_checkpoint_dir, depths, num_labels,
                               pooling=pooling, onnx=onnx, int8_recipe=int8_recipe, device=dev,
                               workdir=workdir)
        workloads = _workloads(dev_features, collator)
        samples = _measure(models, workloads, warmup=warmup, repeats=repeats, device=dev, precision=precision)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": precision,
        "warmup": warmup,
        "repeats": repeats,
        "examples": len(dev_features),
        "examples_b1": workloads["latency_b1_dev_ms"][1],
        "models": _model_records(models, samples),
    }
