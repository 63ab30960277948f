"""The teacher cache's build: one no-grad pass of the fine-tuned teacher, streamed to disk.

The teacher runs in eval mode over each split, in batches of length-sorted
examples, and each batch's logits and layer states go straight into the
cache file (pkd.cache.format), so building holds one batch in memory, not
the whole split. Only the teacher layers that the configured patient
strategies pair are stored (the union of their layer maps over the student
depths, Params.patient_layers). Under torch.distributed every rank runs a
shard of the pass and rank 0 writes.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel

from pkd.cache.format import (
    MANIFEST,
    TORCH_DTYPES,
    CacheFileWriter,
    cache_manifest,
    dataset_fingerprint,
    teacher_hash,
)
from pkd.io import atomic_dir, write_json
from pkd.method.pooling import layer_states, model_pooling
from pkd.models.families import model_inputs
from pkd.models.precision import autocast


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def teacher_batches(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int,
    layers: list[int], precision: str,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Teacher (idx [B], logits [B, C], states [B, L, H] of `layers` or None) per batch, all ranks' batches.

    Batches are formed from length-sorted examples (less padding, same
    results: eval mode is deterministic and attention masks the padding).
    Under torch.distributed each rank takes a contiguous shard; the ranks step
    in lockstep and every batch is gathered, so each rank sees every row once,
    one batch at a time, and the cache equals the single-process one.
    """
    rank, world = _dist_info()
    shards = [dataset.shard(num_shards=world, index=r, contiguous=True) for r in range(world)] if world > 1 else [dataset]
    shard = shards[rank]
    steps = max(math.ceil(len(s) / batch_size) for s in shards)
    model.eval()
    device = next(model.parameters()).device
    pooling = model_pooling(model)
    inputs = model_inputs(model)
    order = np.argsort(np.asarray(shard["length"]), kind="stable")
    for step in tqdm(range(steps), total=steps, desc="teacher cache", unit="batch", disable=None):
        chosen = order[step * batch_size : (step + 1) * batch_size]
        part = None
        if len(chosen):
            rows = shard.select(chosen)
            batch = collator([{k: r[k] for k in inputs if k in r} for r in rows])
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad(), autocast(precision, device):
                out = model(**batch, output_hidden_states=bool(layers))
                # hidden_states[0] is the embedding output; layers 1..N follow.
                states = layer_states(out.hidden_states, batch.get("attention_mask"), pooling, layers) if layers else None
            part = (
                torch.as_tensor(rows["idx"], dtype=torch.long),
                out.logits.float().cpu(),
                None if states is None else states.float().cpu(),
            )
        if world == 1:
            yield part
            continue
        gathered: list = [None] * world
        dist.all_gather_object(gathered, part)
        yield from (p for p in gathered if p is not None)


def build_cache(
    model: PreTrainedModel,
    splits: dict[str, Dataset],
    collator: DataCollatorWithPadding,
    out_dir: str | Path,
    manifest: dict,
    *,
    layers: list[int],
    dtype: str = "float16",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, int]:
    """Run the teacher over each split and stream its outputs to `out_dir`; return rows per split.

    Stores the logits and the states of `layers` (teacher layers, 1-based).
    Memory: one batch of every rank, plus the split's idx column. Under
    torch.distributed every rank runs its shard and rank 0 writes. The
    directory appears atomically, with a manifest that records the teacher's
    depth, hidden size, labels, pooling, the stored layers, dtype and shapes.
    """
    rank, _ = _dist_info()
    config = model.config
    layers = sorted(set(layers))
    for layer in layers:
        if not 1 <= layer <= config.num_hidden_layers:
            raise ValueError(f"teacher layer {layer} is outside 1..{config.num_hidden_layers}")
    target = atomic_dir(out_dir) if rank == 0 else contextlib.nullcontext()
    rows, shapes = {}, {}
    with target as tmp:
        for name, dataset in splits.items():
            writer = None
            if rank == 0:
                writer = CacheFileWriter(tmp / f"{name}.safetensors", dataset["idx"], config.num_labels,
                                         config.hidden_size, len(layers), TORCH_DTYPES[dtype])
            for part in teacher_batches(model, dataset, collator, batch_size, layers, precision):
                if writer is not None:
                    writer.write(*part)
            if writer is not None:
                shapes[name] = writer.close()
            rows[name] = len(dataset)
        if rank == 0:
            info = {"hidden_size": config.hidden_size, "num_labels": config.num_labels,
                    "pooling": model_pooling(model), "precision": precision}
            write_json(tmp / MANIFEST, cache_manifest({**manifest, **info}, teacher_depth=config.num_hidden_layers,
                                                       stored_layers=layers, dtype=dtype, shapes=shapes))
    return rows


def build_teacher_cache(
    model: PreTrainedModel,
    task,
    splits,
    collator: DataCollatorWithPadding,
    out_dir: str | Path,
    *,
    teacher_dir: str | Path,
    layers: list[int],
    dtype: str = "float16",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, int]:
    """The teacher_cache stage's work: cache the train and dev splits of `task` (a TaskInfo),
    with a manifest naming the teacher (by content hash) and the data (by fingerprint),
    so that a student never reads a cache made from another teacher or other data.
    Returns the rows written per split."""
    names = ["train", *task.dev_splits]
    manifest = {
        "task": task.name,
        "teacher_dir": str(teacher_dir),
        "teacher_sha256": teacher_hash(teacher_dir),
        "data_fingerprint": {name: dataset_fingerprint(splits[name]) for name in names},
    }
    return build_cache(model, {name: splits[name] for name in names}, collator, out_dir, manifest,
                       layers=layers, dtype=dtype, batch_size=batch_size, precision=precision)
