"""Teacher outputs computed once: logits and the [CLS] state of every layer.

The fine-tuned teacher runs in eval mode, without gradients, over each split
and its outputs are stored on disk keyed by example idx (safetensors), with a
manifest naming the teacher checkpoint and data they belong to. Students read
rows by idx, so any shuffling or length grouping of the training loader keeps
each example paired with its own teacher row; a cache made from another
teacher or other data is refused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from datasets import Dataset
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel

from pkd.io import atomic_dir, read_json, write_json
from pkd.models import MODEL_INPUTS, model_pooling
from pkd.pooling import layer_states

MANIFEST = "manifest.json"


class StaleCacheError(RuntimeError):
    """The cache does not belong to this teacher or this data."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def teacher_hash(teacher_dir: str | Path) -> str:
    """Hash of the teacher's weights file(s)."""
    files = sorted(Path(teacher_dir).glob("*.safetensors")) or sorted(Path(teacher_dir).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{teacher_dir}: no model weights found")
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """Content hash of what the teacher saw: example ids and token ids, in idx order."""
    digest = hashlib.sha256()
    rows = dataset.select_columns(["idx", "input_ids"]).sort("idx")
    # disable=None: a bar on a terminal, none in logs.
    for row in tqdm(rows, total=len(rows), desc="fingerprint", unit="ex", disable=None):
        digest.update(np.asarray([row["idx"], *row["input_ids"]], dtype=np.int64).tobytes())
    return digest.hexdigest()


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def teacher_outputs(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """Run the teacher over `dataset`; return idx [n], logits [n, C], cls [n, N, H], sorted by idx.

    `cls` holds the sentence state of every layer 1..N: the [CLS] state, or the
    masked mean of the token states for a model trained with `pooling: mean`.

    Batches are formed from length-sorted examples (less padding, same
    results: eval mode is deterministic and attention masks the padding).
    Under torch.distributed each rank takes a contiguous shard and the rows
    are gathered, so the result equals the single-process one.
    """
    rank, world = _dist_info()
    shard = dataset.shard(num_shards=world, index=rank, contiguous=True) if world > 1 else dataset
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(np.asarray(shard["length"]), kind="stable")
    idx_parts, logit_parts, cls_parts = [], [], []
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, total=len(batches), desc="teacher cache", unit="batch", disable=None):
        rows = shard.select(order[start : start + batch_size])
        batch = collator([{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows])
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch, output_hidden_states=True)
        idx_parts.append(torch.as_tensor(rows["idx"], dtype=torch.long))
        logit_parts.append(out.logits.float().cpu())
        # hidden_states[0] is the embedding output; layers 1..N follow.
        states = layer_states(out.hidden_states, batch.get("attention_mask"), model_pooling(model))
        cls_parts.append(states.float().cpu())
    result = {"idx": torch.cat(idx_parts), "logits": torch.cat(logit_parts), "cls": torch.cat(cls_parts)}
    if world > 1:
        gathered: list[dict] = [None] * world  # type: ignore[list-item]
        dist.all_gather_object(gathered, result)
        result = {k: torch.cat([g[k] for g in gathered]) for k in result}
    order_by_idx = torch.argsort(result["idx"])
    return {k: v[order_by_idx].contiguous() for k, v in result.items()}


def write_cache(out_dir: str | Path, splits: dict[str, dict[str, torch.Tensor]], manifest: dict, dtype: str) -> None:
    """Write one safetensors file per split plus the manifest, atomically."""
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    with atomic_dir(out_dir) as tmp:
        shapes = {}
        for split, tensors in splits.items():
            stored = {
                "idx": tensors["idx"],
                "logits": tensors["logits"].float(),
                "cls": tensors["cls"].to(torch_dtype),
            }
            save_file(stored, str(tmp / f"{split}.safetensors"))
            shapes[split] = {k: list(v.shape) for k, v in stored.items()}
        write_json(tmp / MANIFEST, {**manifest, "dtype": dtype, "shapes": shapes})


@dataclass
class TeacherCache:
    """One split of cached teacher outputs, looked up by example idx."""

    idx: torch.Tensor  # [n], sorted
    logits: torch.Tensor  # [n, C]
    cls: torch.Tensor  # [n, N, H], layers 1..N
    manifest: dict

    @property
    def num_layers(self) -> int:
        return self.cls.shape[1]

    def rows(self, idx: torch.Tensor, layers: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher logits [B, C] and [CLS] states [B, L, H] of `layers` (1-based) for examples `idx`."""
        idx = idx.cpu().long()
        pos = torch.searchsorted(self.idx, idx).clamp(max=len(self.idx) - 1)
        missing = self.idx[pos] != idx
        if missing.any():
            raise StaleCacheError(f"example idx {int(idx[missing][0])} is not in the teacher cache")
        logits = self.logits[pos]
        if layers is None:
            return logits, None
        return logits, self.cls[pos][:, [layer - 1 for layer in layers]].float()


def load_cache(cache_dir: str | Path, split: str, *, dataset: Dataset, teacher_dir: str | Path) -> TeacherCache:
    """Load a split and refuse it unless it was made from this teacher and this data."""
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: teacher cache manifest not found (run the teacher_cache stage)")
    manifest = read_json(manifest_path)
    expected_teacher = teacher_hash(teacher_dir)
    if manifest.get("teacher_sha256") != expected_teacher:
        raise StaleCacheError(
            f"{cache_dir}: teacher cache was made from another teacher checkpoint "
            f"({str(manifest.get('teacher_sha256'))[:12]} != {expected_teacher[:12]} of {teacher_dir}); "
            "re-run the teacher_cache stage"
        )
    expected_data = dataset_fingerprint(dataset)
    if manifest.get("data_fingerprint", {}).get(split) != expected_data:
        raise StaleCacheError(
            f"{cache_dir}: teacher cache for split '{split}' was made from other data "
            "(dataset fingerprint differs); re-run the teacher_cache stage"
        )
    tensors = load_file(str(cache_dir / f"{split}.safetensors"))
    return TeacherCache(idx=tensors["idx"], logits=tensors["logits"], cls=tensors["cls"], manifest=manifest)
