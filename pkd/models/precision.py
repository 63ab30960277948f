"""Numeric precision of training, the cache pass, evaluation and timing.

`precision: fp32 | bf16 | fp16` in params.yaml. Mixed precision means autocast
for the forward passes (and Trainer's `bf16`/`fp16` flags for training, with
loss scaling for fp16); weights and optimizer state stay float32, and the
losses are computed in float32 (pkd.method.losses casts its inputs).

What a stage asks for and what it gets can differ: `resolve_precision` is the
pipeline's policy. bf16 and fp16 run on a CUDA GPU (bf16 only where the GPU
supports it); on a CPU, or a GPU without bf16, the stage falls back to fp32
and prints one warning line. That lets the paper preset say `bf16` and still
run, at full precision, on a machine without a suitable GPU. The library
functions below take an already resolved precision and do what they are told
(bf16 on a CPU works through CPU autocast, which the tests use).
"""
from __future__ import annotations

import contextlib
import sys

import torch

from pkd.allowed_values import PRECISIONS
from pkd.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(requested: str, device: torch.device | str | None = None) -> str:
    """The precision a stage will run in: `requested`, or fp32 where the device lacks it (warns)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision '{requested}'; allowed: {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return requested
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        reason = f"{requested} mixed precision is used on a CUDA GPU only, and this stage runs on {device.type}"
    elif requested == "bf16" and not torch.cuda.is_bf16_supported():
        reason = f"this GPU ({torch.cuda.get_device_name(device)}) does not support bf16"
    else:
        return requested
    print(f"warning: precision: {reason}; running in fp32", file=sys.stderr)
    return "fp32"


def trainer_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments keywords for a resolved precision, on this machine's device."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; allowed: {', '.join(PRECISIONS)}")
    flags = {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    if not torch.cuda.is_available():
        if precision == "fp16":
            raise ValueError("precision fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 on a CPU")
        # Without a GPU, Trainer runs on the CPU either way, but only when told so does it join
        # torchrun's processes as one DDP run (gloo); otherwise each process trains a whole
        # model of its own. It also refuses bf16 without a GPU unless told to use the CPU.
        flags["use_cpu"] = True
    return flags


def autocast(precision: str, device: torch.device | str):
    """Autocast context for inference passes; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=DTYPES[precision])
