"""Tokenised splits for one task, as `datasets` on disk.

Truncation to max_seq_length and no padding: batches are padded per batch
at training time. A `length` column feeds the length-grouped sampler.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa
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


def content_fingerprints(splits: DatasetDict) -> DatasetDict:
    """Give each split a fingerprint computed from its contents only.

    `datasets` derives a fingerprint from the chain of transforms, hashing the
    tokenize function and the tokenizer it closes over, and that hash depends
    on where the code and the tokenizer's files lie. save_to_disk writes the
    fingerprint into state.json, so the same data prepared from another
    checkout or venv had other bytes, and DVC saw another hash for it and for
    every result downstream. (The old fingerprint also sits in the arrow
    schema's metadata, hence its removal before hashing.)
    """
    out = {}
    for name, split in splits.items():
        digest = hashlib.sha256()
        for batch in split.with_format("arrow").iter(batch_size=10_000):
            # The schema metadata carries the old fingerprint: hash columns and values only.
            batch = batch.replace_schema_metadata(None)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_table(batch)
            digest.update(sink.getvalue())
        out[name] = split.select_columns(split.column_names, new_fingerprint=digest.hexdigest()[:16])
    return DatasetDict(out)
