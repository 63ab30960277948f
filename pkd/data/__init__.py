"""Task data in one schema, whatever the source.

Every split is a ``datasets.Dataset`` with columns ``idx`` (row order),
``text_a``, ``text_b`` (None for single-sentence tasks) and ``label``
(int64, float32 for STS-B, -1 for unlabelled test rows).

Sources (``pkd.data.sources``): ``glue_dir`` (classic GLUE TSV download),
``hub`` (nyu-mll/glue) and ``builtin`` (generated stand-ins, see
``pkd.data.builtin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pkd.errors import ConfigError, DataFormatError

from .sources import (SOURCES, Source, SourceSettings, get_source, register_source, sources_for,
                      unregister_source)
from .tasks import BUILTIN_TASKS, GLUE_TASKS, TASKS, TaskInfo, TsvLayout, get_task

__all__ = [
    "TaskInfo", "TsvLayout", "TASKS", "GLUE_TASKS", "BUILTIN_TASKS", "get_task", "load_task",
    "SOURCES", "Source", "SourceSettings", "get_source", "register_source", "unregister_source",
    "DataFormatError", "read_glue_split", "load_glue_dir", "generate_builtin", "load_hub",
]

if TYPE_CHECKING:
    from datasets import DatasetDict


def __getattr__(name: str):
    """The readers, imported on first use: they pull in `datasets`, which the config and
    the report (which import this package for the task table) never need."""
    if name in ("read_glue_split", "load_glue_dir"):
        from . import glue_tsv
        return getattr(glue_tsv, name)
    if name == "generate_builtin":
        from .builtin import generate_builtin
        return generate_builtin
    if name == "load_hub":
        from .hub import load_hub
        return load_hub
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_task(task: str | TaskInfo, source: str, *, glue_dir: str | Path | None = None,
              seed: int = 0, builtin_train_size: int | None = None,
              builtin_dev_size: int | None = None) -> DatasetDict:
    """Load ``task`` from ``source`` (a name in ``SOURCES``) into the common schema."""
    info = get_task(task)
    src = get_source(source)
    if src.task_kind != info.source_kind:
        fitting = " or ".join(repr(name) for name in sources_for(info.source_kind))
        if info.source_kind == "builtin":
            raise ConfigError(f"task {info.name!r} is generated offline; use source {fitting}, "
                              f"not {source!r}")
        raise ConfigError(f"task {info.name!r} is a GLUE task; use source {fitting} "
                          f"(built-in tasks: {', '.join(BUILTIN_TASKS)})")
    settings = SourceSettings(glue_dir=glue_dir, seed=seed, builtin_train_size=builtin_train_size,
                              builtin_dev_size=builtin_dev_size)
    from .schema import conform

    # Every source should already produce the schema; conform() makes the contract explicit.
    return conform(src.load(info, settings), info)
