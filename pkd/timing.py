"""Inference timing of the teacher and each student depth, side by side.

Speed depends on the architecture (depth, width, sequence length), not on the
trained weights, so every depth is timed once, on the same inputs, in one
process, with the models' repeats interleaved so that background load hits
them all alike. Reported: parameters, latency at batch 1 and throughput at
batch 32, on real dev lengths and at a fixed length of 128, as median and
quartiles over repeats after warm-up, plus the speed-up over the teacher.
"""
from __future__ import annotations

import platform
import time

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
    precision: str = "fp32",
) -> dict:
    """Time the teacher (its full depth) and a student of each depth; return the timing record.

    `precision` (fp32 | bf16 | fp16, resolved for the device) is the forward's autocast.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = AutoConfig.from_pretrained(checkpoint_dir, num_labels=num_labels)
    teacher_depth = config.num_hidden_layers
    all_depths = [teacher_depth, *sorted(set(depths), reverse=True)]
    models = {}
    for depth in all_depths:
        # Random weights: speed does not depend on their values.
        cfg = AutoConfig.from_pretrained(checkpoint_dir, num_labels=num_labels, num_hidden_layers=depth)
        models[depth] = AutoModelForSequenceClassification.from_config(cfg).to(dev).eval()
    n_b1 = min(len(dev_features), 64)  # batch-1 latency over this many examples
    workloads = {
        "latency_b1_dev_ms": (make_batches(dev_features[:n_b1], collator, 1, None), n_b1),
        "throughput_b32_dev": (make_batches(dev_features, collator, 32, None), len(dev_features)),
        "latency_b1_len128_ms": (make_batches(dev_features[:n_b1], collator, 1, FIXED_LENGTH), n_b1),
        "throughput_b32_len128": (make_batches(dev_features, collator, 32, FIXED_LENGTH), len(dev_features)),
    }
    samples = {d: {k: [] for k in workloads} for d in all_depths}
    for repeat in range(warmup + repeats):
        for key, (batches, n) in workloads.items():
            for depth, model in models.items():  # interleaved: same conditions for every model
                seconds = _run_once(model, batches, dev, precision)
                if repeat >= warmup:
                    value = seconds / n * 1000 if key.startswith("latency") else n / seconds
                    samples[depth][key].append(value)
    records = []
    for depth in all_depths:
        summary = {k: _summary(v) for k, v in samples[depth].items()}
        teacher = {k: _summary(v)["median"] for k, v in samples[teacher_depth].items()}
        speedup = {
            k.removesuffix("_ms"): (teacher[k] / summary[k]["median"] if k.startswith("latency") else summary[k]["median"] / teacher[k])
            for k in workloads
        }
        records.append({
            "model": "teacher" if depth == teacher_depth else f"student-{depth}",
            "depth": depth,
            "parameters": sum(p.numel() for p in models[depth].parameters()),
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
