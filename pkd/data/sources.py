"""Where task data comes from: a registry of sources, by the name `data.source` gives.

A source serves one kind of task (``TaskInfo.source_kind``) and turns a task
into a DatasetDict in the common schema (``pkd.data.schema``). ``load_task``
and ``pkd.pipeline.params`` both read this registry, so a new source is a loader
module plus one ``Source`` entry below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pkd.errors import ConfigError

from .tasks import TaskInfo, get_task

if TYPE_CHECKING:
    from datasets import DatasetDict

# The loaders are imported when a source loads: they pull in `datasets`, which the
# config (it validates data.source against this registry) never needs.

# How each task kind is named in messages that tell the user which sources fit.
KIND_NAMES = {"glue": "GLUE", "builtin": "built-in"}


@dataclass(frozen=True)
class SourceSettings:
    """The `data` parameters a source may need; each source reads the ones it uses."""

    glue_dir: str | Path | None = None
    seed: int = 0
    # No defaults here: params.yaml (pkd.pipeline.params) holds the only ones.
    builtin_train_size: int | None = None
    builtin_dev_size: int | None = None


@dataclass(frozen=True)
class Source:
    name: str
    task_kind: str  # the TaskInfo.source_kind it serves: "glue" or "builtin"
    load: Callable[[TaskInfo, SourceSettings], DatasetDict]


def _builtin(info: TaskInfo, settings: SourceSettings) -> DatasetDict:
    for key in ("builtin_train_size", "builtin_dev_size"):
        if getattr(settings, key) is None:
            raise ConfigError(f"data.{key}: required for source 'builtin'")
    from .builtin import generate_builtin

    return generate_builtin(info, settings.seed, settings.builtin_train_size, settings.builtin_dev_size)


def _glue_dir(info: TaskInfo, settings: SourceSettings) -> DatasetDict:
    if settings.glue_dir is None:
        raise ConfigError("source 'glue_dir' needs glue_dir=<path of the GLUE download>")
    from .glue_tsv import load_glue_dir

    return load_glue_dir(settings.glue_dir, info)


def _hub(info: TaskInfo, settings: SourceSettings) -> DatasetDict:
    from .hub import load_hub

    return load_hub(info)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("builtin", "builtin", _builtin),
        Source("glue_dir", "glue", _glue_dir),
        Source("hub", "glue", _hub),
    )
}


def register_source(source: Source) -> None:
    if source.name in SOURCES:
        raise ValueError(f"source {source.name!r} is already registered")
    if source.task_kind not in KIND_NAMES:
        raise ValueError(f"source {source.name!r}: task_kind must be one of {', '.join(KIND_NAMES)}")
    SOURCES[source.name] = source


def unregister_source(name: str) -> None:
    del SOURCES[name]


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown source {name!r}; allowed: {', '.join(SOURCES)}") from None


def task_input(task: str, source: str, glue_dir: str | None, custom=None) -> str:
    """The file or folder a task's data is read from (`data.inputs`, hashed by DVC).

    A custom task's folder or dataset directory; a GLUE task's folder of the GLUE download
    (MNLI's whole download: it also reads the diagnostic set and WNLI); for data that is
    generated or fetched, the module that makes it."""
    if custom is not None:
        return custom.input_path() or "pkd/data/custom.py"
    if source == "glue_dir" and glue_dir:
        info = get_task(task)
        return str(Path(glue_dir)) if info.leaderboard_extras else str(Path(glue_dir) / info.glue_dir_name)
    return {"builtin": "pkd/data/builtin.py", "hub": "pkd/data/hub.py"}.get(source, "pkd/data/sources.py")


def sources_for(kind: str) -> tuple[str, ...]:
    """Names of the sources that serve tasks of `kind`, in registration order."""
    return tuple(name for name, source in SOURCES.items() if source.task_kind == kind)


def needed_sources(info: TaskInfo) -> str:
    """'GLUE tasks need source: glue_dir or hub': the hint when a task and a source do not fit."""
    return f"{KIND_NAMES[info.source_kind]} tasks need source: {' or '.join(sources_for(info.source_kind))}"
