import dataclasses

import pytest
from datasets import Dataset, DatasetDict

from pkd.data import (
    BUILTIN_TASKS,
    GLUE_TASKS,
    SOURCES,
    TASKS,
    Source,
    TaskInfo,
    TsvLayout,
    get_task,
    load_task,
    register_source,
    unregister_source,
)
from pkd.data.tasks import AX_TASK, DIAGNOSTIC_SPLIT, WNLI_SPLIT, WNLI_TASK
from pkd.errors import ConfigError


def test_registry_lists_every_task_once():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"}
    assert set(BUILTIN_TASKS) == {"builtin_sentiment", "builtin_pair"}
    assert set(TASKS) == set(GLUE_TASKS) | set(BUILTIN_TASKS)
    for name, info in TASKS.items():
        assert info.name == name
        assert info.main_metric in info.metric_names


def test_get_task_unknown_names_allowed_values():
    with pytest.raises(ValueError, match=r"unknown task 'x'; allowed: .*sst2.*builtin_pair"):
        get_task("x")
    assert get_task("sst2") is TASKS["sst2"]
    assert get_task(TASKS["rte"]) is TASKS["rte"]


def test_task_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TASKS["sst2"].num_labels = 3


@pytest.mark.parametrize(
    "name, metrics, main",
    [
        ("cola", ("matthews_corrcoef",), "matthews_corrcoef"),
        ("sst2", ("accuracy",), "accuracy"),
        ("mrpc", ("f1", "accuracy"), "accuracy"),
        ("qqp", ("f1", "accuracy"), "accuracy"),
        ("stsb", ("pearson", "spearmanr"), "pearson"),
        ("mnli", ("accuracy",), "accuracy"),
        ("builtin_pair", ("accuracy",), "accuracy"),
    ],
)
def test_metrics(name, metrics, main):
    info = get_task(name)
    assert info.metric_names == metrics
    assert info.main_metric == main


def test_label_orders_follow_hf_glue():
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["qnli"].label_names == ("entailment", "not_entailment")
    assert TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert TASKS["sst2"].label_names == ("negative", "positive")
    assert TASKS["mrpc"].label_names == ("not_equivalent", "equivalent")
    assert TASKS["builtin_sentiment"].label_names == ("negative", "positive")
    assert TASKS["builtin_pair"].label_names == ("not_equivalent", "equivalent")


def test_regression_and_splits():
    stsb = TASKS["stsb"]
    assert stsb.is_regression and stsb.num_labels == 1 and stsb.label_names == ()
    mnli = TASKS["mnli"]
    assert mnli.dev_splits == ("dev_matched", "dev_mismatched")
    assert mnli.test_splits == ("test_matched", "test_mismatched")
    assert mnli.num_labels == 3 and mnli.has_pair
    assert not TASKS["sst2"].has_pair and not TASKS["cola"].has_pair
    for name in BUILTIN_TASKS:
        info = TASKS[name]
        assert info.source_kind == "builtin" and info.test_splits == ()
        assert info.glue_dir_name is None and info.hub_config is None


def test_glue_names():
    dirs = {n: TASKS[n].glue_dir_name for n in GLUE_TASKS}
    assert dirs == {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B",
                    "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}
    assert all(TASKS[n].hub_config == n and TASKS[n].source_kind == "glue" for n in GLUE_TASKS)
    assert isinstance(TASKS["sst2"], TaskInfo)


@pytest.mark.parametrize("source", ["glue_dir", "hub"])
def test_builtin_task_refuses_other_sources(source, tmp_path):
    with pytest.raises(ValueError, match="use source 'builtin'"):
        load_task("builtin_sentiment", source, glue_dir=tmp_path)


def test_glue_task_refuses_builtin_source():
    with pytest.raises(ValueError, match="GLUE task"):
        load_task("sst2", "builtin")


def test_unknown_source_and_missing_glue_dir():
    with pytest.raises(ValueError, match="unknown source 'web'"):
        load_task("sst2", "web")
    with pytest.raises(ValueError, match="glue_dir"):
        load_task("sst2", "glue_dir")


def test_load_task_builtin_schema():
    dd = load_task("builtin_sentiment", "builtin", builtin_train_size=20, builtin_dev_size=10)
    assert list(dd) == ["train", "dev"]
    feats = dd["train"].features
    assert list(feats) == ["idx", "text_a", "text_b", "label"]
    assert feats["label"].dtype == "int64" and feats["text_b"].dtype == "string"
    assert dd["train"]["text_b"][:] == [None] * 20


@pytest.mark.parametrize("name", [*GLUE_TASKS, "ax", "wnli"])
def test_every_glue_task_describes_its_hub_tsv_and_submission_files(name):
    info = {"ax": AX_TASK, "wnli": WNLI_TASK}.get(name) or TASKS[name]
    assert len(info.hub_columns) == (2 if info.has_pair else 1)
    assert info.hub_config == name
    # Every split has a file; labelled splits and test splits each have a layout.
    assert [split for split, _ in info.tsv_files] == list(info.splits)
    assert all(file.endswith(".tsv") for _, file in info.tsv_files)
    for split in info.splits:
        layout = info.tsv_layout(split)
        if name == "ax" and split == "train":
            assert layout is None  # the diagnostic set is test-only
            continue
        assert isinstance(layout, TsvLayout)
        assert (layout.label is None) == (split in info.test_splits)
        assert layout.header or isinstance(layout.n_fields, int)
    assert {split for split, _ in info.submission_files} >= set(info.test_splits)
    assert info.submission_labels in ("id", "name", "score")


def test_glue_tsv_layouts_and_submission_rules():
    cola = TASKS["cola"]
    assert cola.tsv_labelled == TsvLayout(3, None, 1, header=False, n_fields=4)
    assert cola.tsv_test == TsvLayout("sentence", None, None)
    assert TASKS["mrpc"].tsv_labelled == TsvLayout("#1 String", "#2 String", "Quality")
    assert TASKS["mnli"].tsv_layout("test_matched") == TsvLayout("sentence1", "sentence2", None)
    assert TASKS["mnli"].tsv_file("dev_mismatched") == "dev_mismatched.tsv"
    assert AX_TASK.tsv_file("diagnostic") == "diagnostic.tsv"
    ids = {n for n in GLUE_TASKS if TASKS[n].tsv_label_ids}
    assert ids == {"sst2", "cola", "mrpc", "qqp"} and WNLI_TASK.tsv_label_ids
    names = {(n, s): TASKS[n].submission_name(s) for n in GLUE_TASKS for s in TASKS[n].test_splits}
    assert names == {
        ("cola", "test"): "CoLA", ("sst2", "test"): "SST-2", ("mrpc", "test"): "MRPC",
        ("stsb", "test"): "STS-B", ("qqp", "test"): "QQP", ("qnli", "test"): "QNLI",
        ("rte", "test"): "RTE", ("mnli", "test_matched"): "MNLI-m",
        ("mnli", "test_mismatched"): "MNLI-mm",
    }
    assert TASKS["mnli"].submission_name(DIAGNOSTIC_SPLIT) == "AX"
    assert TASKS["mnli"].submission_name(WNLI_SPLIT) == "WNLI"
    assert TASKS["mnli"].leaderboard_extras == (DIAGNOSTIC_SPLIT, WNLI_SPLIT)
    assert {n for n in GLUE_TASKS if TASKS[n].submission_labels == "name"} == {"mnli", "qnli", "rte"}
    assert TASKS["stsb"].submission_labels == "score"
    with pytest.raises(ValueError, match="no GLUE submission file for split 'dev'"):
        TASKS["sst2"].submission_name("dev")


def test_builtin_tasks_have_no_glue_files():
    for name in BUILTIN_TASKS:
        info = TASKS[name]
        assert info.hub_columns == () and info.tsv_files == () and info.submission_files == ()
        assert info.tsv_labelled is None and info.leaderboard_extras == ()


def test_a_task_entry_that_contradicts_itself_is_refused_at_construction():
    fields = {f.name: getattr(TASKS["sst2"], f.name) for f in dataclasses.fields(TaskInfo)}
    with pytest.raises(ValueError, match="hub_columns"):
        TaskInfo(**{**fields, "hub_columns": ("sentence1", "sentence2")})
    with pytest.raises(ValueError, match="submission_labels"):
        TaskInfo(**{**fields, "submission_labels": "label"})


def _in_memory(info, settings):
    """Eight labelled rows per split, numbered from the seed so the test can see settings pass through."""
    def split(n):
        return Dataset.from_dict({
            "text_a": [f"row {settings.seed + i}" for i in range(n)],
            "label": [i % info.num_labels for i in range(n)],
        })
    return DatasetDict({"train": split(8), "dev": split(8)})


def test_a_source_registered_elsewhere_is_loaded_through_load_task():
    register_source(Source("memory", "builtin", _in_memory))
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_source(Source("memory", "builtin", _in_memory))
        dd = load_task("builtin_sentiment", "memory", seed=100)
        # load_task conforms what the source returns: idx added, text_b filled in, dtypes fixed.
        assert list(dd) == ["train", "dev"] and len(dd["train"]) == 8
        assert list(dd["train"].features) == ["idx", "text_a", "text_b", "label"]
        assert dd["train"][0] == {"idx": 0, "text_a": "row 100", "text_b": None, "label": 0}
        with pytest.raises(ConfigError, match="GLUE task; use source 'glue_dir' or 'hub' "):
            load_task("sst2", "memory")
        with pytest.raises(ConfigError, match="use source 'builtin' or 'memory', not 'hub'"):
            load_task("builtin_pair", "hub")
    finally:
        unregister_source("memory")
    assert "memory" not in SOURCES
    with pytest.raises(ConfigError, match="unknown source 'memory'; allowed: builtin, glue_dir, hub$"):
        load_task("builtin_sentiment", "memory")
