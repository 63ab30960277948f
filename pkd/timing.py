"""Inference timing of the teacher and each student depth, side by side.

Speed depends on the architecture (depth, width, sequence length), not on the
trained weights, so every depth is timed once, on the same inputs, in one
process, with the models' repeats interleaved so that background load hits
them all alike. Reported: parameters, latency at batch 1 and throughput at
batch 32, on real dev lengths and at a fixed length of 128, as median and
quartiles over repeats after warm-up, plus the speed-up over the teacher.
With onnx=True, ONNX Runtime fp32 and int8 rows join them: what a user would ship.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, DataCollatorWithPadding

from pkd.precision import autocast

FIXED_LENGTH = 128


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(dev_features: list[dict], collator: DataCollatorWithPadding, batch_size: int, fixed_length: int | None):
    """Padded batches of dev examples in dataset order; or of fixed-length inputs."""
    if fixed_length:
        n = len(dev_features)
        ids = torch.full((n, fixed_length), 1000, dtype=torch.long)  # any in-vocabulary token
        ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
        mask = torch.ones_like(ids)
        return [
            {"input_ids": ids[i : i + batch_size], "attention_mask": mask[i : i + batch_size]}
            for i in range(0, n, batch_size)
        ]
    return [collator(dev_features[i : i + batch_size]) for i in range(0, len(dev_features), batch_size)]


@torch.no_grad()
def _run_once(model, batches, device, precision: str = "fp32") -> float:
    _sync(device)
    start = time.perf_counter()
    with autocast(precision, device):
        for batch in batches:
            model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()})
    _sync(device)
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, float]:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(q50), "p25": float(q25), "p75": float(q75)}


def _onnx_variants(model, workdir: Path, threads: int) -> dict:
    """{runtime: (ONNX Runtime session, size in MB)} for fp32 and int8 exports of `model`."""
    from pkd.deploy.export import OnnxClassifier, export_dir, size_mb

    fp32, int8, _ = export_dir(model, workdir)
    return {"onnx_fp32": (OnnxClassifier(fp32, threads), size_mb(fp32)),
            "onnx_int8": (OnnxClassifier(int8, threads), size_mb(int8))}


def _run_onnx(session, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        session(batch)
    return time.perf_counter() - start


def time_depths(
    checkpoint_dir: str,
    depths: list[int],
    dev_features: list[dict],
    collator: DataCollatorWithPadding,
    num_labels: int,
    *,
    warmup: int = 3,
    repeats: int = 10,
    device: str | None = None,
    student_checkpoint_dir: str | None = None,
    onnx: bool = False,
    precision: str = "fp32",
) -> dict:
    """Time the teacher (its full depth) and a student of each depth; return the timing record.

    Students have the architecture of `student_checkpoint_dir` (their init checkpoint,
    which may be wider or narrower than the teacher) when it is given.
    onnx=True adds ONNX Runtime fp32 and int8 (dynamic quantisation) rows for every
    depth, on CPU, with as many threads as PyTorch. Speed-ups are always relative
    to the PyTorch fp32 teacher. size_mb: weights on disk (safetensors or .onnx).
    `precision` (fp32 | bf16 | fp16, resolved for the device) is the PyTorch forward's autocast.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = AutoConfig.from_pretrained(checkpoint_dir, num_labels=num_labels)
    teacher_depth = config.num_hidden_layers
    all_depths = [teacher_depth, *sorted(set(depths), reverse=True)]
    tmp = Path(tempfile.mkdtemp(prefix="pkd-timing-"))
    runners, sizes, params = {}, {}, {}
    try:
        for depth in all_depths:
            # Random weights: speed does not depend on their values.
            source = checkpoint_dir if depth == teacher_depth else (student_checkpoint_dir or checkpoint_dir)
            cfg = AutoConfig.from_pretrained(source, num_labels=num_labels, num_hidden_layers=depth)
            model = AutoModelForSequenceClassification.from_config(cfg).eval()
            params[depth] = sum(p.numel() for p in model.parameters())
            model.save_pretrained(tmp / f"pt-{depth}")
            sizes[("pytorch", depth)] = (tmp / f"pt-{depth}" / "model.safetensors").stat().st_size / 1e6
            if onnx:
                for runtime, (session, size) in _onnx_variants(model, tmp / f"onnx-{depth}", torch.get_num_threads()).items():
                    runners[(runtime, depth)] = session
                    sizes[(runtime, depth)] = size
            runners[("pytorch", depth)] = model.to(dev)
        n_b1 = min(len(dev_features), 64)  # batch-1 latency over this many examples
        workloads = {
            "latency_b1_dev_ms": (make_batches(dev_features[:n_b1], collator, 1, None), n_b1),
            "throughput_b32_dev": (make_batches(dev_features, collator, 32, None), len(dev_features)),
            "latency_b1_len128_ms": (make_batches(dev_features[:n_b1], collator, 1, FIXED_LENGTH), n_b1),
            "throughput_b32_len128": (make_batches(dev_features, collator, 32, FIXED_LENGTH), len(dev_features)),
        }
        numpy_batches = {k: [{n: t.numpy() for n, t in b.items()} for b in batches] for k, (batches, _) in workloads.items()}
        runtimes = ("pytorch", "onnx_fp32", "onnx_int8")  # PyTorch rows first, as before ONNX
        order = sorted(runners, key=lambda key: (runtimes.index(key[0]), all_depths.index(key[1])))
        samples = {key: {k: [] for k in workloads} for key in order}
        for repeat in range(warmup + repeats):
            for name, (batches, n) in workloads.items():
                for key in order:  # interleaved: same conditions for every model
                    runtime, _ = key
                    if runtime == "pytorch":
                        seconds = _run_once(runners[key], batches, dev, precision)
                    else:
                        seconds = _run_onnx(runners[key], numpy_batches[name])
                    if repeat >= warmup:
                        value = seconds / n * 1000 if name.startswith("latency") else n / seconds
                        samples[key][name].append(value)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    teacher = {k: _summary(v)["median"] for k, v in samples[("pytorch", teacher_depth)].items()}
    records = []
    for key in order:
        runtime, depth = key
        summary = {k: _summary(v) for k, v in samples[key].items()}
        speedup = {
            k.removesuffix("_ms"): (teacher[k] / summary[k]["median"] if k.startswith("latency") else summary[k]["median"] / teacher[k])
            for k in workloads
        }
        records.append({
            "model": "teacher" if depth == teacher_depth else f"student-{depth}",
            "runtime": runtime,
            "depth": depth,
            "parameters": params[depth],
            "size_mb": sizes[key],
            **summary,
            "speedup": speedup,
            "layer_ratio": teacher_depth / depth,
        })
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": precision,
        "warmup": warmup,
        "repeats": repeats,
        "examples": len(dev_features),
        "examples_b1": n_b1,
        "models": records,
    }
