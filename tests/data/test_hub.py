import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from pkd.data import load_hub, load_task
from pkd.data.hub import HUB_SPLIT_MAP, hub_load_args, to_common_schema
from pkd.data.tasks import AX_TASK, GLUE_TASKS, TASKS, WNLI_TASK


def fake_split(columns: dict, label_names=None, labels=None, label_dtype="int64"):
    """An in-memory split shaped like nyu-mll/glue (idx int32, ClassLabel labels).

    Labels default to 0 for labelled splits and -1 for test-like ones (no label_names).
    """
    n = len(next(iter(columns.values())))
    feats = {name: Value("string") for name in columns}
    feats["label"] = ClassLabel(names=list(label_names)) if label_names else Value(label_dtype)
    feats["idx"] = Value("int32")
    if labels is None:
        labels = [0] * n if label_names else [-1] * n
    return Dataset.from_dict(dict(columns, label=labels, idx=list(range(n))),
                             features=Features(feats))


def test_hub_load_args():
    assert hub_load_args("sst2") == ("nyu-mll/glue", "sst2")
    assert hub_load_args("mnli") == ("nyu-mll/glue", "mnli")
    with pytest.raises(ValueError, match="built in"):
        hub_load_args("builtin_pair")


def test_maps_cover_all_glue_tasks():
    for name in GLUE_TASKS:
        assert set(TASKS[name].hub_column_map.values()) == (
            {"text_a", "text_b"} if TASKS[name].has_pair else {"text_a"})
    assert HUB_SPLIT_MAP["validation"] == "dev"
    assert HUB_SPLIT_MAP["validation_mismatched"] == "dev_mismatched"
    assert TASKS["qnli"].hub_column_map == {"question": "text_a", "sentence": "text_b"}
    assert TASKS["mnli"].hub_column_map == {"premise": "text_a", "hypothesis": "text_b"}
    assert AX_TASK.hub_column_map == {"premise": "text_a", "hypothesis": "text_b"}
    assert WNLI_TASK.hub_column_map == {"sentence1": "text_a", "sentence2": "text_b"}


def test_sst2_mapping():
    names = ("negative", "positive")
    hub = DatasetDict({
        "train": fake_split({"sentence": ["good", "bad", "ok"]}, names, labels=[1, 0, 1]),
        "validation": fake_split({"sentence": ["fine"]}, names),
        "test": fake_split({"sentence": ["t1", "t2"]}),
    })
    dd = to_common_schema("sst2", hub)
    assert list(dd) == ["train", "dev", "test"]
    for ds in dd.values():
        assert ds.column_names == ["idx", "text_a", "text_b", "label"]
        assert ds.features["label"].dtype == "int64"
        assert ds.features["idx"].dtype == "int64"
    assert dd["train"][:] == {"idx": [0, 1, 2], "text_a": ["good", "bad", "ok"],
                              "text_b": [None] * 3, "label": [1, 0, 1]}
    assert dd["test"]["label"][:] == [-1, -1]


def test_mnli_mapping_keeps_split_names_and_drops_unknown_splits():
    labels = ("entailment", "neutral", "contradiction")
    pair = {"premise": ["p"], "hypothesis": ["h"]}
    hub = DatasetDict({
        "test_mismatched": fake_split(pair),
        "train": fake_split(pair, labels),
        "validation_matched": fake_split(pair, labels),
        "validation_mismatched": fake_split(pair, labels),
        "test_matched": fake_split(pair),
        "ax": fake_split(pair, labels),  # not an MNLI split of ours
    })
    dd = to_common_schema("mnli", hub)
    assert list(dd) == ["train", "dev_matched", "dev_mismatched", "test_matched",
                        "test_mismatched"]
    assert dd["dev_matched"][0] == {"idx": 0, "text_a": "p", "text_b": "h", "label": 0}


def test_qnli_question_is_text_a():
    hub = DatasetDict({
        s: fake_split({"question": ["q?"], "sentence": ["s."]}, ("entailment", "not_entailment"))
        for s in ("train", "validation")
    })
    row = to_common_schema("qnli", hub)["dev"][0]
    assert (row["text_a"], row["text_b"]) == ("q?", "s.")


def test_stsb_float_labels():
    hub = DatasetDict({
        s: fake_split({"sentence1": ["a", "b"], "sentence2": ["c", "d"]},
                     labels=[4.5, 0.25], label_dtype="float32")
        for s in ("train", "validation")
    })
    dd = to_common_schema("stsb", hub)
    assert dd["train"].features["label"].dtype == "float32"
    assert dd["dev"]["label"][:] == [4.5, 0.25]


def test_missing_columns_and_splits_are_errors():
    hub = DatasetDict({s: fake_split({"text": ["x"]}, ("negative", "positive"))
                       for s in ("train", "validation")})
    with pytest.raises(ValueError, match="lacks columns \\['sentence'\\]"):
        to_common_schema("sst2", hub)
    hub = DatasetDict({"train": fake_split({"sentence": ["x"]}, ("negative", "positive"))})
    with pytest.raises(ValueError, match="lacks splits \\['dev'\\]"):
        to_common_schema("sst2", hub)


def test_load_hub_calls_load_dataset_offline(monkeypatch):
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return DatasetDict({
            s: fake_split({"sentence1": ["a"], "sentence2": ["b"]}, ("entailment", "not_entailment"))
            for s in ("train", "validation", "test")
        })

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dd = load_hub("rte")
    assert calls == [(("nyu-mll/glue", "rte"), {})]
    assert list(dd) == ["train", "dev", "test"]
    dd = load_task("rte", "hub")
    assert dd["train"][0] == {"idx": 0, "text_a": "a", "text_b": "b", "label": 0}


def test_idx_is_renumbered_by_row_order():
    split = fake_split({"sentence": ["a", "b"]}, ("negative", "positive"))
    split = split.remove_columns("idx").add_column("idx", [7, 3])
    dd = to_common_schema("sst2", DatasetDict({"train": split, "validation": split}))
    assert dd["train"]["idx"][:] == [0, 1]


def test_idx_follows_a_selected_view():
    # A select()ed view keeps the full table underneath; idx must follow the view.
    split = fake_split({"sentence": ["a", "b", "c"]}, ("negative", "positive")).select([2, 0])
    dd = to_common_schema("sst2", DatasetDict({"train": split, "validation": split}))
    assert dd["train"][:]["text_a"] == ["c", "a"]
    assert dd["train"]["idx"][:] == [0, 1]


def test_mnli_from_the_hub_carries_ax_and_wnli(monkeypatch):
    labels = ("entailment", "neutral", "contradiction")
    pair = {"premise": ["p"], "hypothesis": ["h"]}
    hub = {
        "mnli": DatasetDict({
            "train": fake_split(pair, labels), "validation_matched": fake_split(pair, labels),
            "validation_mismatched": fake_split(pair, labels),
        }),
        "ax": DatasetDict({"test": fake_split({"premise": ["a1", "a2"], "hypothesis": ["b1", "b2"]})}),
        "wnli": DatasetDict({
            "train": fake_split({"sentence1": ["x"] * 3, "sentence2": ["y"] * 3},
                                ("not_entailment", "entailment"), labels=[0, 0, 1]),
            "test": fake_split({"sentence1": ["s"] * 4, "sentence2": ["t"] * 4}),
        }),
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, config: hub[config])
    dd = load_task("mnli", "hub")
    assert dd["ax"]["text_a"][:] == ["a1", "a2"] and dd["ax"]["label"][:] == [-1, -1]
    assert dd["wnli"]["label"][:] == [0, 0, 0, 0]
