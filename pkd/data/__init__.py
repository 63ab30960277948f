"""Task data in one schema, whatever the source.

Every split is a ``datasets.Dataset`` with columns ``idx`` (row order),
``text_a``, ``text_b`` (None for single-sentence tasks) and ``label``
(int64, float32 for STS-B, -1 for unlabelled test rows).

Sources (``pkd.data.sources``): ``glue_dir`` (classic GLUE TSV download),
``hub`` (nyu-mll/glue) and ``builtin`` (generated stand-ins, see
``pkd.data.builtin``). The user's own tasks (``pkd.data.custom``) name their
files or dataset themselves, in params.yaml's ``data.custom_tasks``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pkd.errors import ConfigError, DataFormatError

from .sources import (SOURCES, Source, SourceSettings, get_source, register_source, sources_for,
                      unregister_source)
from .tasks import BUILTIN_TASKS, GLUE_TASKS, TASKS, TaskInfo, TsvLayout, get_task

# A custom task's TaskInfo (labels read from train) travels with its prepared data in this file.
TASK_RECORD = "task.json"

__all__ = [
    "TaskInfo", "TsvLayout", "TASKS", "GLUE_TASKS", "BUILTIN_TASKS", "get_task", "load_task",
    "SOURCES", "Source", "SourceSettings", "get_source", "register_source", "unregister_source",
    "DataFormatError", "read_glue_split", "load_glue_dir", "generate_builtin", "load_hub",
    "load_params_task", "prepared_task", "TASK_RECORD",
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


def load_params_task(task: str, data, seed: int = 0) -> tuple[DatasetDict, TaskInfo]:
    """(splits, TaskInfo) of one task of a params `data` section: a custom task from its own
    files or dataset, any other from `data.source`."""
    spec = data.custom_tasks.get(task)
    if spec is not None:
        from .custom import read_custom_task

        return read_custom_task(task, spec)
    splits = load_task(task, data.source, glue_dir=data.glue_dir, seed=seed,
                       builtin_train_size=data.builtin_train_size, builtin_dev_size=data.builtin_dev_size)
    return splits, get_task(task)


def prepared_task(task: str, prepared_dir: str | Path) -> TaskInfo:
    """A task by name: pkd's own from its table, a custom one from the record that its
    prepared data carries (written by the prepare stage)."""
    if task in TASKS:
        return TASKS[task]
    record = Path(prepared_dir) / TASK_RECORD
    if not record.is_file():
        raise ConfigError(f"{record}: no task record; run the prepare stage of task '{task}' first")
    import json

    from .custom import task_info_from_dict

    return task_info_from_dict(json.loads(record.read_text()))
