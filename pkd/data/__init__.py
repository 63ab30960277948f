"""Task data in one schema, whatever the source.

Every split is a ``datasets.Dataset`` with columns ``idx`` (row order),
``text_a``, ``text_b`` (None for single-sentence tasks) and ``label``
(int64, float32 for STS-B, -1 for unlabelled test rows).

Sources: ``glue_dir`` (classic GLUE TSV download), ``hub`` (nyu-mll/glue)
and ``builtin`` (generated stand-ins, see ``pkd.data.builtin``).
"""

from __future__ import annotations

from pathlib import Path

from datasets import DatasetDict

from .builtin import generate_builtin
from pkd.errors import ConfigError, DataFormatError
from .glue_tsv import load_glue_dir, read_glue_split
from .hub import load_hub
from .schema import conform
from .tasks import BUILTIN_TASKS, GLUE_TASKS, TASKS, TaskInfo, get_task

SOURCES = ("builtin", "glue_dir", "hub")

__all__ = [
    "TaskInfo", "TASKS", "GLUE_TASKS", "BUILTIN_TASKS", "SOURCES", "get_task", "load_task",
    "DataFormatError", "read_glue_split", "load_glue_dir", "generate_builtin", "load_hub",
]


def load_task(task: str | TaskInfo, source: str, *, glue_dir: str | Path | None = None,
              seed: int = 0, builtin_train_size: int = 3000,
              builtin_dev_size: int = 1000) -> DatasetDict:
    """Load ``task`` from ``source`` into the common schema."""
    info = get_task(task)
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    if info.source_kind == "builtin" and source != "builtin":
        raise ConfigError(f"task {info.name!r} is generated offline; use source 'builtin', "
                         f"not {source!r}")
    if info.source_kind == "glue" and source == "builtin":
        raise ConfigError(f"task {info.name!r} is a GLUE task; use source 'glue_dir' or 'hub' "
                         f"(built-in tasks: {', '.join(BUILTIN_TASKS)})")
    if source == "builtin":
        dd = generate_builtin(info, seed, builtin_train_size, builtin_dev_size)
    elif source == "glue_dir":
        if glue_dir is None:
            raise ConfigError("source 'glue_dir' needs glue_dir=<path of the GLUE download>")
        dd = load_glue_dir(glue_dir, info)
    else:
        dd = load_hub(info)
    # Every source already produces the schema; conform() makes the contract explicit.
    return conform(dd, info)
