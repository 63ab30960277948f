"""The one row schema shared by every task source.

Columns: ``idx`` (row order, 0-based), ``text_a``, ``text_b`` (None for
single-sentence tasks), ``label`` (int64 class id, float32 for regression,
-1 / -1.0 for unlabelled test rows).

A custom regression task marks an unlabelled row NaN instead: its targets are the
user's, and -1.0 may be one of them. GLUE's STS-B scores lie in 0..5, so its -1.0 cannot be.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value

from .tasks import TaskInfo

COLUMNS = ("idx", "text_a", "text_b", "label")
UNLABELLED = -1


def labelled_rows(labels, info: TaskInfo) -> np.ndarray:
    """A boolean mask of the rows that carry a label (see the module docstring for the markers)."""
    labels = np.asarray(labels, dtype=float)
    if not info.is_regression:
        return labels != UNLABELLED
    mask = ~np.isnan(labels)
    if info.source_kind != "custom":
        mask &= labels != UNLABELLED
    return mask


def features_for(info: TaskInfo) -> Features:
    return Features(
        {
            "idx": Value("int64"),
            "text_a": Value("string"),
            "text_b": Value("string"),
            "label": Value("float32" if info.is_regression else "int64"),
        }
    )


def rows_to_dataset(rows: list[dict], info: TaskInfo) -> Dataset:
    """Build a Dataset from row dicts, (re)numbering ``idx`` by row order."""
    columns = {
        "idx": list(range(len(rows))),
        "text_a": [r["text_a"] for r in rows],
        "text_b": [r.get("text_b") for r in rows],
        "label": [r["label"] for r in rows],
    }
    return Dataset.from_dict(columns, features=features_for(info))


def majority_rows(train_labels: list[int], test_rows: list[dict]) -> list[dict]:
    """`test_rows` labelled with the most frequent training label (the smaller id on a tie)."""
    counts: dict[int, int] = {}
    for label in train_labels:
        counts[label] = counts.get(label, 0) + 1
    if not counts:
        raise ValueError("majority class of an empty training split")
    majority = min(counts, key=lambda label: (-counts[label], label))
    return [{**row, "label": majority} for row in test_rows]


def _is_row_order(ds: Dataset) -> bool:
    # Through the formatter, not ds.data: the table ignores select()/shuffle() indices.
    return np.array_equal(ds.with_format("numpy")["idx"][:], np.arange(len(ds)))


def conform(dd: DatasetDict, info: TaskInfo) -> DatasetDict:
    """Make sure every split has exactly our columns and dtypes.

    Idempotent, so ``load_task`` can apply it to any source's output.
    """
    out = {}
    features = features_for(info)
    for split, ds in dd.items():
        missing = {"text_a", "label"} - set(ds.column_names)
        if missing:
            raise ValueError(f"split {split!r} lacks columns {sorted(missing)}")
        if "text_b" not in ds.column_names:
            ds = ds.add_column("text_b", [None] * len(ds), feature=Value("string"))
        if "idx" not in ds.column_names or not _is_row_order(ds):
            if "idx" in ds.column_names:
                ds = ds.remove_columns("idx")
            ds = ds.add_column("idx", list(range(len(ds))), feature=Value("int64"))
        ds = ds.select_columns(list(COLUMNS))
        if ds.features != features:  # skip a no-op cast (and its progress bar)
            ds = ds.cast(features)
        out[split] = ds
    return DatasetDict(out)
