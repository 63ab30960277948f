"""Load GLUE from the Hugging Face hub (``nyu-mll/glue``) into the common schema.

Only ``load_hub`` touches the network; ``to_common_schema`` is a pure mapping
so it can be tested with an in-memory DatasetDict. Each task's config name and
text columns are its ``TaskInfo`` (``hub_config``, ``hub_columns``).
"""

from __future__ import annotations

import datasets
from datasets import DatasetDict

from .schema import conform, majority_rows
from .tasks import AX_TASK, DIAGNOSTIC_SPLIT, WNLI_SPLIT, WNLI_TASK, TaskInfo, get_task

HUB_REPO = "nyu-mll/glue"

# Hub split name -> our split name. Anything else (e.g. "ax") is ignored.
HUB_SPLIT_MAP: dict[str, str] = {
    "train": "train",
    "validation": "dev",
    "validation_matched": "dev_matched",
    "validation_mismatched": "dev_mismatched",
    "test": "test",
    "test_matched": "test_matched",
    "test_mismatched": "test_mismatched",
}


def _glue_info(task: str | TaskInfo) -> TaskInfo:
    info = get_task(task)
    if info.source_kind != "glue":
        raise ValueError(f"task {info.name!r} is built in; it is not on the hub")
    return info


def hub_load_args(task: str | TaskInfo) -> tuple[str, str]:
    return HUB_REPO, _glue_info(task).hub_config


def to_common_schema(task: str | TaskInfo, dataset_dict: DatasetDict) -> DatasetDict:
    """Rename hub columns to ours, keep only known splits, fix dtypes.

    ``idx`` is renumbered by row order (the hub's idx already is, but our
    schema guarantees it rather than trusting the source).
    """
    info = _glue_info(task)
    columns = info.hub_column_map
    out = {}
    for hub_split, ds in dataset_dict.items():
        split = HUB_SPLIT_MAP.get(hub_split)
        if split is None or split not in info.splits:
            continue
        needed = list(columns) + ["label"]
        missing = [c for c in needed if c not in ds.column_names]
        if missing:
            raise ValueError(
                f"hub split {hub_split!r} of {info.name!r} lacks columns {missing}; "
                f"has {ds.column_names}"
            )
        ds = ds.select_columns(needed).rename_columns(columns)
        out[split] = ds
    missing_splits = [s for s in ("train",) + info.dev_splits if s not in out]
    if missing_splits:
        raise ValueError(f"hub data for {info.name!r} lacks splits {missing_splits}")
    # Keep the canonical split order regardless of the hub's order.
    ordered = {s: out[s] for s in info.splits if s in out}
    return conform(DatasetDict(ordered), info)


def leaderboard_extras(task: str | TaskInfo = "mnli") -> dict[str, datasets.Dataset]:
    """MNLI's companions on the GLUE leaderboard: "ax" (diagnostic) and "wnli" (majority class).

    Only those in ``task``'s ``leaderboard_extras`` are downloaded.
    """
    wanted = get_task(task).leaderboard_extras
    extras = {}
    if DIAGNOSTIC_SPLIT in wanted:
        ax = datasets.load_dataset(HUB_REPO, AX_TASK.hub_config)["test"]
        pair = AX_TASK.hub_column_map
        extras[DIAGNOSTIC_SPLIT] = ax.select_columns([*pair, "label"]).rename_columns(pair)
    if WNLI_SPLIT in wanted:
        wnli = datasets.load_dataset(HUB_REPO, WNLI_TASK.hub_config)
        columns = WNLI_TASK.hub_column_map
        test = [{ours: r[theirs] for theirs, ours in columns.items()} for r in wnli["test"]]
        rows = majority_rows(list(wnli["train"]["label"]), test)
        extras[WNLI_SPLIT] = datasets.Dataset.from_dict(
            {k: [r[k] for r in rows] for k in ("text_a", "text_b", "label")})
    return extras


def load_hub(task: str | TaskInfo) -> DatasetDict:
    info = get_task(task)
    # Looked up through the module so tests can monkeypatch datasets.load_dataset.
    dd = to_common_schema(info, datasets.load_dataset(*hub_load_args(info)))
    if info.leaderboard_extras:
        dd = conform(DatasetDict({**dd, **leaderboard_extras(info)}), info)
    return dd
