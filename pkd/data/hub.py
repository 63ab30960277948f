"""Load GLUE from the Hugging Face hub (``nyu-mll/glue``) into the common schema.

Only ``load_hub`` touches the network; ``to_common_schema`` is a pure mapping
so it can be tested with an in-memory DatasetDict.
"""

from __future__ import annotations

import datasets
from datasets import DatasetDict

from .schema import conform, majority_rows
from .tasks import DIAGNOSTIC_SPLIT, WNLI_SPLIT, TaskInfo, get_task

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

# Hub text columns -> our text columns.
HUB_COLUMN_MAP: dict[str, dict[str, str]] = {
    "cola": {"sentence": "text_a"},
    "sst2": {"sentence": "text_a"},
    "mrpc": {"sentence1": "text_a", "sentence2": "text_b"},
    "stsb": {"sentence1": "text_a", "sentence2": "text_b"},
    "qqp": {"question1": "text_a", "question2": "text_b"},
    "mnli": {"premise": "text_a", "hypothesis": "text_b"},
    "qnli": {"question": "text_a", "sentence": "text_b"},
    "rte": {"sentence1": "text_a", "sentence2": "text_b"},
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
    columns = HUB_COLUMN_MAP[info.name]
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


def leaderboard_extras() -> dict[str, datasets.Dataset]:
    """MNLI's companions on the GLUE leaderboard: "ax" (diagnostic) and "wnli" (majority class)."""
    ax = datasets.load_dataset(HUB_REPO, "ax")["test"]
    wnli = datasets.load_dataset(HUB_REPO, "wnli")
    pair = {"premise": "text_a", "hypothesis": "text_b"}
    test = [{"text_a": r["sentence1"], "text_b": r["sentence2"]} for r in wnli["test"]]
    rows = majority_rows(list(wnli["train"]["label"]), test)
    return {
        DIAGNOSTIC_SPLIT: ax.select_columns([*pair, "label"]).rename_columns(pair),
        WNLI_SPLIT: datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in ("text_a", "text_b", "label")}),
    }


def load_hub(task: str | TaskInfo) -> DatasetDict:
    # Looked up through the module so tests can monkeypatch datasets.load_dataset.
    dd = to_common_schema(task, datasets.load_dataset(*hub_load_args(task)))
    if get_task(task).name == "mnli":
        dd = conform(DatasetDict({**dd, **leaderboard_extras()}), get_task(task))
    return dd
