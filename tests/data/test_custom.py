"""Custom tasks: the user's own CSV / TSV / JSON Lines / Parquet files or dataset, mapped by column."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pkd.data import load_params_task, load_task, prepared_task
from pkd.data.custom import CustomTaskSpec, read_custom_task, task_info_from_dict, task_info_to_dict
from pkd.errors import DataFormatError
from pkd.pipeline.params import ConfigError, parse_params

ROOT = Path(__file__).resolve().parents[2]
GLUE = ROOT.parent / "shared" / "data" / "glue"


def write_csv(path: Path, header: list[str], rows: list[list], delimiter=",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tickets(tmp_path):
    """A support-ticket intent task as a user would have it: own column names, label names as text."""
    header = ["ticket_id", "subject", "team"]
    train = write_csv(tmp_path / "tickets/train.csv", header, [
        [1, "refund please", "billing"], [2, "app crashes", "tech"], [3, "NA", "billing"],
        [4, "cannot log in", "account"], [5, "charged twice", "billing"], [6, "007 error", "tech"]])
    dev = write_csv(tmp_path / "tickets/dev.csv", header, [[7, "crash on start", "tech"], [8, "invoice", "billing"]])
    return CustomTaskSpec(train=str(train), dev=str(dev), text="subject", label="team")


def test_csv_with_own_columns_is_read_into_the_common_schema(tickets):
    splits, info = read_custom_task("tickets", tickets)
    assert info.label_names == ("account", "billing", "tech")  # alphabetical: a stable order
    assert info.metric_names == ("accuracy", "macro_f1") and info.main_metric == "accuracy"
    assert not info.has_pair and not info.is_regression and info.test_splits == ()
    train = splits["train"]
    assert train["text_a"] == ["refund please", "app crashes", "NA", "cannot log in", "charged twice", "007 error"]
    assert train["label"] == [1, 2, 1, 0, 1, 2] and train["idx"] == list(range(6))
    assert splits["dev"]["label"] == [2, 1]


def test_declared_labels_set_the_order_and_numbers_sort_as_numbers(tickets, tmp_path):
    declared = CustomTaskSpec(**{**tickets.__dict__, "labels": ["tech", "billing", "account"]})
    splits, info = read_custom_task("tickets", declared)
    assert info.label_names == ("tech", "billing", "account") and splits["train"]["label"][:2] == [1, 0]
    rows = [[f"s{i}", label] for i, label in enumerate(["10", "2", "1", "2"])]
    numeric = CustomTaskSpec(train=str(write_csv(tmp_path / "n/train.csv", ["s", "y"], rows)),
                             dev=str(write_csv(tmp_path / "n/dev.csv", ["s", "y"], rows)), text="s", label="y")
    assert read_custom_task("n", numeric)[1].label_names == ("1", "2", "10")


def test_declared_labels_are_stripped_as_data_labels_are(tickets):
    declared = CustomTaskSpec(**{**tickets.__dict__, "labels": ["tech", " billing", "account "]})
    assert read_custom_task("tickets", declared)[1].label_names == ("tech", "billing", "account")
    with pytest.raises(ConfigError, match="labels: must not repeat"):
        CustomTaskSpec(**{**tickets.__dict__, "labels": ["tech", "tech "]})


def test_label_order_does_not_depend_on_the_order_labels_are_met():
    from itertools import permutations

    from pkd.data.custom import _stable_order

    for names, order in [(["2", "nan", "10"], ("10", "2", "nan")), (["2", "inf", "10"], ("10", "2", "inf")),
                         (["2", "-1", "10"], ("-1", "2", "10"))]:
        assert {_stable_order(list(p)) for p in permutations(names)} == {order}


def test_labels_that_are_the_same_number_written_two_ways_are_refused(tmp_path):
    rows = [["a", "1"], ["b", "01"], ["c", "2"], ["d", "1.0"]]
    spec = CustomTaskSpec(train=str(write_csv(tmp_path / "n/train.csv", ["t", "y"], rows)),
                          dev=str(write_csv(tmp_path / "n/dev.csv", ["t", "y"], rows[:1])), text="t", label="y")
    with pytest.raises(ConfigError) as err:
        read_custom_task("n", spec)
    assert str(err.value) == (f"{spec.train}: column 'y' writes one number as '01', '1', '1.0'; "
                              "write each class one way, or declare the classes in labels")
    declared = CustomTaskSpec(**{**spec.__dict__, "labels": ["1", "01", "1.0", "2"]})
    assert read_custom_task("n", declared)[1].label_names == ("1", "01", "1.0", "2")

def test_binary_tasks_add_mcc_and_the_main_metric_may_be_chosen(tmp_path):
    rows = [["a", "yes"], ["b", "no"]]
    spec = {"train": str(write_csv(tmp_path / "b/train.csv", ["t", "l"], rows)),
                "dev": str(write_csv(tmp_path / "b/dev.csv", ["t", "l"], rows)), "text": "t", "label": "l"}
    assert read_custom_task("b", CustomTaskSpec(**spec))[1].metric_names == ("accuracy", "macro_f1", "matthews_corrcoef")
    assert read_custom_task("b", CustomTaskSpec(**spec, main_metric="macro_f1"))[1].main_metric == "macro_f1"
    with pytest.raises(ConfigError, match="main_metric: unknown 'pearson'"):
        CustomTaskSpec(**spec, main_metric="pearson")


def test_mcc_as_main_metric_is_refused_where_it_is_not_computed(tickets):
    spec = {"train": tickets.train, "dev": tickets.dev, "text": "subject", "label": "team",
            "main_metric": "matthews_corrcoef"}
    with pytest.raises(ConfigError, match=r"^main_metric: 'matthews_corrcoef' needs 2 classes; a regression task"):
        CustomTaskSpec(**spec, regression=True)
    with pytest.raises(ConfigError, match=r"^main_metric: 'matthews_corrcoef' needs 2 classes; labels has 3"):
        CustomTaskSpec(**spec, labels=["tech", "billing", "account"])
    with pytest.raises(ConfigError) as err:  # 3 classes, read from train
        read_custom_task("tickets", CustomTaskSpec(**spec))
    assert str(err.value) == ("main_metric: 'matthews_corrcoef' needs 2 classes; task 'tickets' has 3 "
                              "(account, billing, tech); allowed: accuracy, macro_f1")

def test_jsonl_pairs_regression_and_unlabelled_test(tmp_path):
    rows = [{"left": "a man sings", "right": "a person sings", "sim": 4.5},
            {"left": "a cat", "right": "the stock market", "sim": 0}]
    spec = CustomTaskSpec(train=str(write_jsonl(tmp_path / "s/train.jsonl", rows)),
                          dev=str(write_jsonl(tmp_path / "s/dev.jsonl", rows)),
                          test=str(write_jsonl(tmp_path / "s/test.jsonl", [{"left": "x", "right": "y"}])),
                          text="left", text_pair="right", label="sim", regression=True)
    splits, info = read_custom_task("sim", spec)
    assert info.is_regression and info.num_labels == 1 and info.metric_names == ("pearson", "spearmanr")
    assert info.main_metric == "pearson" and info.has_pair and info.test_splits == ("test",)
    assert splits["train"]["label"] == [4.5, 0.0] and splits["train"]["text_b"] == ["a person sings", "the stock market"]
    assert np.isnan(splits["test"]["label"]).all() and splits["test"]["text_a"] == ["x"]


def test_a_missing_regression_target_is_nan_so_minus_one_stays_a_target(tmp_path):
    rows = [["a", "0.5"], ["b", "-1"]]
    spec = CustomTaskSpec(train=str(write_csv(tmp_path / "r/train.csv", ["t", "y"], rows)),
                          dev=str(write_csv(tmp_path / "r/dev.csv", ["t", "y"], rows)),
                          test=str(write_csv(tmp_path / "r/test.csv", ["t", "y"], [["c", "-1.0"], ["d", ""]])),
                          text="t", label="y", regression=True)
    test = read_custom_task("r", spec)[0]["test"]["label"]
    assert test[0] == -1.0 and np.isnan(test[1])


def test_tsv_and_parquet(tmp_path):
    import pandas as pd

    tsv = tmp_path / "t/train.tsv"
    tsv.parent.mkdir()
    tsv.write_text('sentence\tlabel\nhe said "hi\t1\nok\t0\n')  # as GLUE writes TSV: a quote is text
    parquet = tmp_path / "t/dev.parquet"
    pd.DataFrame({"sentence": ["fine", "bad"], "label": [1, 0]}).to_parquet(parquet)
    splits, info = read_custom_task("t", CustomTaskSpec(train=str(tsv), dev=str(parquet), text="sentence", label="label"))
    assert splits["train"]["text_a"] == ['he said "hi', "ok"]
    assert info.label_names == ("0", "1") and splits["dev"]["label"] == [1, 0]


def test_a_dataset_saved_to_disk_or_a_parquet_folder(tmp_path):
    """`dataset:` takes what datasets.load_dataset takes: a hub id, offline here a local copy."""
    from datasets import Dataset, DatasetDict

    dd = DatasetDict({"train": Dataset.from_dict({"review": ["good", "bad", "fine"], "stars": [1, 0, 1]}),
                      "validation": Dataset.from_dict({"review": ["great", "awful"], "stars": [1, 0]})})
    dd.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "pq/data").mkdir(parents=True)
    for split, ds in dd.items():
        ds.to_parquet(str(tmp_path / f"pq/data/{split}-00000-of-00001.parquet"))
    for location in ("saved", "pq"):
        spec = CustomTaskSpec(dataset=str(tmp_path / location), train="train", dev="validation", text="review", label="stars")
        splits, info = read_custom_task("reviews", spec)
        assert splits["dev"]["text_a"] == ["great", "awful"] and splits["dev"]["label"] == [1, 0]
        assert info.label_names == ("0", "1")
    bad = CustomTaskSpec(dataset=str(tmp_path / "saved"), train="train", dev="dev", text="review", label="stars")
    with pytest.raises(ConfigError, match=r"dev: dataset .* has no split 'dev'; it has: train, validation"):
        read_custom_task("reviews", bad)


def test_a_dataset_keeps_its_class_names_and_minus_one_test_rows_are_unlabelled(tmp_path):
    """As the hub writes them: a ClassLabel column, and -1 for a test row without a label."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"review": Value("string"), "stars": ClassLabel(names=["positive", "negative"])})
    split = {"train": (["good", "bad", "fine"], [0, 1, 0]), "validation": (["great", "awful"], [0, 1]),
             "test": (["ok", "meh", "dire"], [-1, 0, -1])}
    DatasetDict({name: Dataset.from_dict({"review": texts, "stars": labels}, features=features)
                 for name, (texts, labels) in split.items()}).save_to_disk(str(tmp_path / "saved"))
    spec = CustomTaskSpec(dataset=str(tmp_path / "saved"), train="train", dev="validation", test="test",
                          text="review", label="stars")
    splits, info = read_custom_task("reviews", spec)
    assert info.label_names == ("positive", "negative")  # the dataset's own order
    assert splits["train"]["label"] == [0, 1, 0] and splits["test"]["label"] == [-1, 0, -1]
    plain = tmp_path / "plain"  # an int column: -1 is no class of train, so no label
    DatasetDict({name: Dataset.from_dict({"review": texts, "stars": labels})
                 for name, (texts, labels) in split.items()}).save_to_disk(str(plain))
    splits, info = read_custom_task("reviews", CustomTaskSpec(**{**spec.__dict__, "dataset": str(plain)}))
    assert info.label_names == ("0", "1") and splits["test"]["label"] == [-1, 0, -1]

def test_task_record_round_trips(tickets):
    _, info = read_custom_task("tickets", tickets)
    assert task_info_from_dict(json.loads(json.dumps(task_info_to_dict(info)))) == info


# ---------------------------------------------------------------- bad input: one line naming the file


def bad(tmp_path, header, rows, **spec):
    train = write_csv(tmp_path / "bad/train.csv", header, rows)
    dev = write_csv(tmp_path / "bad/dev.csv", header, rows[:1])
    return CustomTaskSpec(**{"train": str(train), "dev": str(dev), "text": "text", "label": "label", **spec})


def test_a_missing_column_lists_the_columns_there_are(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "y"]], text="body")
    with pytest.raises(ConfigError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}: no column 'body'; its columns: text, label"


def test_a_dev_label_never_seen_in_train(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "y"]])
    write_csv(Path(spec.dev), ["text", "label"], [["c", "x"], ["d", "z"]])
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.dev}:3: label 'z' was never seen in train (x, y)"


def test_an_empty_file(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "y"]])
    Path(spec.dev).write_text("")
    with pytest.raises(ConfigError, match=rf"^{spec.dev}: the file is empty$"):
        read_custom_task("t", spec)
    Path(spec.dev).write_text("text,label\n")  # a header and no rows
    with pytest.raises(ConfigError, match=rf"^{spec.dev}: no rows$"):
        read_custom_task("t", spec)


def test_a_non_numeric_regression_target(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "0.5"], ["b", "high"]], regression=True)
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}:3: regression target 'high' is not a number"


def test_an_empty_text(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["  ", "y"]])
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}:3: column 'text' is empty"


def test_a_missing_label_outside_test(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", ""]])
    with pytest.raises(DataFormatError, match=r":3: column 'label' is empty \(only test rows may be unlabelled\)"):
        read_custom_task("t", spec)


def test_an_unused_column_does_not_matter_past_the_first_10000_rows(tmp_path):
    rows = [[i, f"text {i}", "ab"[i % 2], "" if i == 10_020 else i] for i in range(10_050)]
    spec = bad(tmp_path, ["id", "text", "label", "votes"], rows)
    splits, info = read_custom_task("t", spec)
    assert len(splits["train"]) == 10_050 and info.label_names == ("a", "b")


def test_a_file_that_is_not_utf8_names_its_line(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "y"]])
    Path(spec.train).write_bytes("text,label\nok,x\ncaf\u00e9,y\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}:3: not UTF-8 (byte 0xe9); save the file as UTF-8"
    jsonl = tmp_path / "bad/train.jsonl"
    jsonl.write_bytes('{"text": "ok", "label": "x"}\n{"text": "caf\u00e9", "label": "y"}\n'.encode("latin-1"))
    with pytest.raises(DataFormatError, match=rf"^{jsonl}:2: not UTF-8 \(byte 0xe9\)"):
        read_custom_task("t", CustomTaskSpec(**{**spec.__dict__, "train": str(jsonl)}))


def test_a_row_with_more_fields_than_the_header(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "y", "z"]])
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}:3: 3 fields, but the header has 2"

def test_the_line_after_a_quoted_multi_line_cell(tmp_path):
    spec = bad(tmp_path, ["text", "label"], [["two\nlines", "x"], ["b", "y"], ["", "x"]])
    with pytest.raises(DataFormatError) as err:
        read_custom_task("t", spec)
    assert str(err.value) == f"{spec.train}:5: column 'text' is empty"  # header 1, rows at 2-3, 4, 5

def test_a_single_class_and_an_unknown_file_type(tmp_path):
    with pytest.raises(ConfigError, match="has a single class"):
        read_custom_task("t", bad(tmp_path, ["text", "label"], [["a", "x"], ["b", "x"]]))
    odd = tmp_path / "train.xlsx"
    odd.write_text("x")
    with pytest.raises(ConfigError, match=r"unknown file type '.xlsx'; allowed: .csv, .tsv"):
        read_custom_task("t", CustomTaskSpec(train=str(odd), dev=str(odd), text="t", label="l"))


# ---------------------------------------------------------------- params


def params_with(tmp_path, spec: dict, tasks=("tickets",)) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(tasks=list(tasks), custom_tasks={"tickets": spec}, inputs=None)
    return raw


def test_params_define_a_task_with_its_columns(tickets, tmp_path):
    params = parse_params(params_with(tmp_path, {"train": tickets.train, "dev": tickets.dev,
                                                 "text": "subject", "label": "team"}))
    assert params.data.custom_task("tickets").label == "team"
    from pkd.pipeline.params import task_inputs

    assert task_inputs(params.data) == {"tickets": str(tmp_path / "tickets")}
    splits, info = load_params_task("tickets", params.data)
    assert info.name == "tickets" and len(splits["train"]) == 6


@pytest.mark.parametrize("change, message", [
    ({"train": "nowhere/train.csv"}, r"data\.custom_tasks: tickets\.train: file 'nowhere/train.csv' does not exist"),
    ({"colour": "red"}, r"data\.custom_tasks\.tickets\.colour: Unexpected keyword argument"),
    ({"labels": ["a"]}, r"labels: a classifier needs at least 2 classes"),
    ({"regression": True, "labels": ["a", "b"]}, r"labels: a regression task has no classes"),
])
def test_bad_custom_task_params_name_the_key(tickets, tmp_path, change, message):
    spec = {"train": tickets.train, "dev": tickets.dev, "text": "subject", "label": "team", **change}
    with pytest.raises(ConfigError, match=message):
        parse_params(params_with(tmp_path, spec))


def test_a_custom_name_may_not_shadow_a_glue_task(tickets, tmp_path):
    raw = params_with(tmp_path, {"train": tickets.train, "dev": tickets.dev, "text": "subject", "label": "team"})
    raw["data"]["custom_tasks"] = {"sst2": raw["data"]["custom_tasks"]["tickets"]}
    with pytest.raises(ConfigError, match="task 'sst2' is one of pkd's own tasks"):
        parse_params(raw)


def test_prepared_task_reads_the_record(tmp_path, tickets):
    _, info = read_custom_task("tickets", tickets)
    (tmp_path / "task.json").write_text(json.dumps(task_info_to_dict(info)))
    assert prepared_task("tickets", tmp_path) == info
    assert prepared_task("sst2", tmp_path).name == "sst2"
    with pytest.raises(ConfigError, match="no task record; run the prepare stage"):
        prepared_task("tickets", tmp_path / "elsewhere")


# ---------------------------------------------------------------- the same rows as glue_dir


def glue_rewritten(glue: Path, tmp_path: Path, train_rows: int) -> dict[str, CustomTaskSpec]:
    """SST-2 as CSV and MRPC as JSON Lines, with column names of their own, from a GLUE folder."""
    specs = {}
    sst2 = load_task("sst2", "glue_dir", glue_dir=glue)
    for split in ("train", "dev"):
        ds = sst2[split].select(range(min(train_rows, len(sst2[split])))) if split == "train" else sst2[split]
        write_csv(tmp_path / f"sst2/{split}.csv", ["review", "sentiment"], zip(ds["text_a"], ds["label"]))
    specs["sst2"] = CustomTaskSpec(train=str(tmp_path / "sst2/train.csv"), dev=str(tmp_path / "sst2/dev.csv"),
                                   text="review", label="sentiment")
    mrpc = load_task("mrpc", "glue_dir", glue_dir=glue)
    for split in ("train", "dev"):
        ds = mrpc[split].select(range(min(train_rows, len(mrpc[split])))) if split == "train" else mrpc[split]
        write_jsonl(tmp_path / f"mrpc/{split}.jsonl", [
            {"first": a, "second": b, "paraphrase": y} for a, b, y in zip(ds["text_a"], ds["text_b"], ds["label"])])
    specs["mrpc"] = CustomTaskSpec(train=str(tmp_path / "mrpc/train.jsonl"), dev=str(tmp_path / "mrpc/dev.jsonl"),
                                   text="first", text_pair="second", label="paraphrase")
    return specs


def assert_same_rows_and_scores(glue: Path, tmp_path: Path, tiny_bert: Path, train_rows: int):
    from transformers import DataCollatorWithPadding

    from pkd.data.prepare import tokenize
    from pkd.evaluation.evaluate import predict_logits
    from pkd.evaluation.metrics import glue_metrics, logits_to_predictions
    from pkd.models.loading import build_teacher, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_bert))
    for task, spec in glue_rewritten(glue, tmp_path, train_rows).items():
        ours, custom_info = read_custom_task(task, spec)
        theirs = load_task(task, "glue_dir", glue_dir=glue)
        theirs["train"] = theirs["train"].select(range(len(ours["train"])))
        for split in ("train", "dev"):
            for column in ("text_a", "text_b", "label"):
                assert ours[split][column] == theirs[split][column], (task, split, column)
        dev_ours = tokenize(ours, tokenizer, custom_info, 64)["dev"]
        glue_info = prepared_task(task, tmp_path)
        dev_theirs = tokenize(theirs, tokenizer, glue_info, 64)["dev"]
        assert dev_ours["input_ids"] == dev_theirs["input_ids"]
        model = build_teacher(str(tiny_bert), glue_info, seed=0)
        collator = DataCollatorWithPadding(tokenizer)
        scores = []
        for info, dev in ((custom_info, dev_ours), (glue_info, dev_theirs)):
            preds = logits_to_predictions(predict_logits(model, dev, collator), False)
            scores.append(glue_metrics(("accuracy",), preds, np.asarray(dev["label"])))
        assert scores[0] == scores[1]


def test_glue_rewritten_as_csv_and_jsonl_gives_the_same_rows_and_scores(tmp_path, tiny_bert):
    """A stand-in GLUE folder: always runs."""
    glue = tmp_path / "glue"
    write_csv(glue / "SST-2/train.tsv", ["sentence", "label"], [["a fine film ", 1], ["dull", 0], ["bad", 0]], "\t")
    write_csv(glue / "SST-2/dev.tsv", ["sentence", "label"], [["great fun", 1], ["boring", 0]], "\t")
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [[1, 1, 2, "he left", "he went away"], [0, 3, 4, "a cat", "stocks fell"]]
    write_csv(glue / "MRPC/train.tsv", header, rows, "\t")
    write_csv(glue / "MRPC/dev.tsv", header, rows[::-1], "\t")
    assert_same_rows_and_scores(glue, tmp_path / "own", tiny_bert, train_rows=10)


@pytest.mark.skipif(not (GLUE / "SST-2").is_dir(), reason="real GLUE not at ../shared/data/glue")
def test_real_sst2_and_mrpc_rewritten_give_the_same_rows_and_scores(tmp_path, tiny_bert):
    assert_same_rows_and_scores(GLUE, tmp_path, tiny_bert, train_rows=500)



# ---------------------------------------------------------------- `pkd task`: check the files, write params


def test_pkd_task_checks_the_files_and_writes_params(tickets, tmp_path, capsys):
    from pkd.cli.main import main

    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    main(["task", "tickets", "--train", tickets.train, "--dev", tickets.dev, "--text", "subject",
          "--label", "team", "--params", str(params_file)])
    out = capsys.readouterr().out
    assert out.startswith("task 'tickets': train 6, dev 2 rows; 3 labels: account, billing, tech; "
                          "metrics accuracy, macro_f1 (main: accuracy)")
    params = parse_params(yaml.safe_load(params_file.read_text()))
    assert params.data.tasks == ["tickets"] and params.data.inputs == {"tickets": str(tmp_path / "tickets")}
    assert params.data.custom_task("tickets") == tickets
    assert "# builtin | glue_dir | hub" in params_file.read_text()  # comments kept


def test_pkd_task_strips_the_labels_it_is_given(tickets, tmp_path, capsys):
    from pkd.cli.main import main

    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    main(["task", "tickets", "--train", tickets.train, "--dev", tickets.dev, "--text", "subject",
          "--label", "team", "--labels", "tech, billing, account", "--params", str(params_file)])
    assert "3 labels: tech, billing, account;" in capsys.readouterr().out
    spec = parse_params(yaml.safe_load(params_file.read_text())).data.custom_task("tickets")
    assert spec.labels == ["tech", "billing", "account"]
    # ... and writes them stripped, as a reader of params.yaml expects them
    assert yaml.safe_load(params_file.read_text())["data"]["custom_tasks"]["tickets"]["labels"] == [
        "tech", "billing", "account"]


def test_pkd_task_refuses_bad_files_in_one_line_and_writes_nothing(tickets, tmp_path, capsys):
    from pkd.cli.main import main

    params_file = tmp_path / "params.yaml"
    params_file.write_text(before := (ROOT / "params.yaml").read_text())
    with pytest.raises(SystemExit) as exit_info:
        main(["task", "tickets", "--train", tickets.train, "--dev", tickets.dev, "--text", "body",
              "--label", "team", "--params", str(params_file)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tickets.train}: no column 'body'; its columns: ticket_id, subject, team"]
    assert params_file.read_text() == before


def test_the_prepare_stage_stops_on_bad_data_with_one_line_and_writes_nothing(tickets, tmp_path):
    import os
    import subprocess
    import sys

    write_csv(Path(tickets.dev), ["ticket_id", "subject", "team"], [[7, "crash", "tech"], [8, "hi", "sales"]])
    raw = params_with(tmp_path, {"train": tickets.train, "dev": tickets.dev, "text": "subject", "label": "team"})
    raw["data"]["inputs"] = {"tickets": str(tmp_path / "tickets")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PKD_TRACKING": "off"}
    env.pop("PKD_PARAMS", None)
    proc = subprocess.run([sys.executable, str(ROOT / "stages/prepare.py"), "--task", "tickets"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {tickets.dev}:3: label 'sales' was never seen in train (account, billing, tech)"]
    assert "Traceback" not in proc.stderr and not (tmp_path / "data").exists()


def test_a_custom_regression_task_trains_with_mse_and_scores_pearson(tmp_path, tiny_bert):
    """A declared regression task: one output, MSE to the float target, Pearson/Spearman on dev."""
    from pkd.data.prepare import tokenize
    from pkd.models.loading import build_teacher, load_tokenizer
    from pkd.pipeline.params import TrainParams
    from pkd.training.train import train_model

    rows = [{"a": f"sentence {i}", "b": f"other {i % 5}", "score": i / 7} for i in range(32)]
    spec = CustomTaskSpec(train=str(write_jsonl(tmp_path / "r/train.jsonl", rows)),
                          dev=str(write_jsonl(tmp_path / "r/dev.jsonl", rows[:16])),
                          text="a", text_pair="b", label="score", regression=True)
    splits, info = read_custom_task("similarity", spec)
    tokenizer = load_tokenizer(str(tiny_bert))
    splits = tokenize(splits, tokenizer, info, 32)
    model = build_teacher(str(tiny_bert), info, seed=0)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    assert model.config.pkd_task_info["is_regression"] is True
    history = train_model(model, tokenizer, task=info, train=splits["train"], dev=splits["dev"],
                          params=TrainParams(epochs=1, batch_size=16, learning_rate=1e-3, train_eval_samples=8),
                          learning_rate=1e-3, seed=0, checkpoint_dir=tmp_path / "ckpt", model_out=tmp_path / "model",
                          history_out=tmp_path / "history.json")
    assert {"dev_pearson", "dev_spearmanr", "dev_score", "loss"} <= set(history[-1])
