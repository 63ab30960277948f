"""Tokenised splits for one task, as `datasets` on disk.

Truncation to max_seq_length and no padding: batches are padded per batch
at training time. A `length` column feeds the length-grouped sampler.
"""
from __future__ import annotations

from datasets import DatasetDict

from pkd.data.tasks import TaskInfo


def subsample(splits: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    """The first n examples of each split (idx order), for quick runs."""
    out = {}
    for name, split in splits.items():
        limit = max_train if name == "train" else max_eval
        out[name] = split.select(range(min(limit, len(split)))) if limit else split
    return DatasetDict(out)


def tokenize(splits: DatasetDict, tokenizer, task: TaskInfo, max_seq_length: int) -> DatasetDict:
    def encode(batch):
        second = batch["text_b"] if task.has_pair else None
        enc = tokenizer(batch["text_a"], second, truncation=True, max_length=max_seq_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    return splits.map(encode, batched=True, desc=f"tokenise {task.name}")
