from pathlib import Path

import pytest
from glue_files import (
    MNLI_DEV_HEADER,
    MNLI_TEST_HEADER,
    MNLI_TRAIN_HEADER,
    mnli_row,
    write,
    write_mnli_with_leaderboard_extras,
)

from pkd.data import DataFormatError, load_glue_dir, load_task, read_glue_split

REAL_SST2 = Path(__file__).resolve().parents[2].parent / "shared/data/glue/SST-2"


def data_lines(path: Path, header: bool = True) -> int:
    """Count lines independently of the reader (what `wc -l` says, minus a header)."""
    raw = path.read_bytes()
    n = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    return n - (1 if header else 0)


def test_sst2_bom_and_stray_quotes(tmp_path):
    lines = [
        "sentence\tlabel",
        'a "quoted" word\t1',
        'a lone " opens a quote that never closes\t0',
        "the next row must stay separate\t1",
        '"\t0',
    ]
    path = write(tmp_path, "SST-2/train.tsv", lines, bom=True)
    rows = read_glue_split(tmp_path, "sst2", "train")
    assert len(rows) == data_lines(path) == 4
    assert [r["text_a"] for r in rows] == [
        'a "quoted" word',
        'a lone " opens a quote that never closes',
        "the next row must stay separate",
        '"',
    ]
    assert [r["label"] for r in rows] == [1, 0, 1, 0]
    assert [r["idx"] for r in rows] == [0, 1, 2, 3]
    assert all(r["text_b"] is None for r in rows)


def test_bom_on_header_is_not_part_of_column_name(tmp_path):
    # Without stripping, the header would read "\ufeffindex" and the lookup by name fail.
    write(tmp_path, "RTE/dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment"],
          bom=True)
    rows = read_glue_split(tmp_path, "rte", "dev")
    assert rows == [{"idx": 0, "text_a": "a", "text_b": "b", "label": 0}]


def test_malformed_row_names_file_and_line(tmp_path):
    lines = ["sentence\tlabel", "fine\t1", "also fine\t0", "one\ttab\ttoo many\t1", "ok\t0"]
    path = write(tmp_path, "SST-2/train.tsv", lines, bom=True)
    with pytest.raises(DataFormatError) as err:
        read_glue_split(tmp_path, "sst2", "train")
    assert isinstance(err.value, ValueError)
    assert str(err.value) == f"{path}:4: expected 2 tab-separated fields, got 4"
    assert err.value.line == 4


def test_too_few_fields_and_blank_line_are_errors(tmp_path):
    path = write(tmp_path, "SST-2/dev.tsv", ["sentence\tlabel", "a\t1", "", "b\t0"])
    with pytest.raises(DataFormatError, match=rf"{path.name}:3: expected 2 .* got 1"):
        read_glue_split(tmp_path, "sst2", "dev")


def test_unknown_label_names_file_and_line(tmp_path):
    path = write(tmp_path, "QNLI/train.tsv",
                 ["index\tquestion\tsentence\tlabel", "0\tq\ts\tentailment", "1\tq\ts\tmaybe"])
    with pytest.raises(DataFormatError, match=rf"{path}:3: unknown label 'maybe'"):
        read_glue_split(tmp_path, "qnli", "train")


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="SST-2/train.tsv"):
        read_glue_split(tmp_path, "sst2", "train")
    with pytest.raises(FileNotFoundError):
        load_glue_dir(tmp_path, "sst2")


def test_missing_header_column(tmp_path):
    write(tmp_path, "RTE/train.tsv", ["index\tsentence1\tsentence2\tgold", "0\ta\tb\tentailment"])
    with pytest.raises(DataFormatError, match=r"train.tsv:1: header lacks column 'label'"):
        read_glue_split(tmp_path, "rte", "train")


@pytest.mark.parametrize("newline,final", [("\n", True), ("\n", False), ("\r\n", True)])
def test_line_endings(tmp_path, newline, final):
    path = write(tmp_path, "SST-2/dev.tsv", ["sentence\tlabel", "a\t1", "b\t0"],
                 newline=newline, final=final)
    rows = read_glue_split(tmp_path, "sst2", "dev")
    assert [r["text_a"] for r in rows] == ["a", "b"]
    assert len(rows) == data_lines(path)


def test_sst2_test_split_unlabelled(tmp_path):
    write(tmp_path, "SST-2/test.tsv", ["index\tsentence", "0\tfirst", "1\tsecond"])
    rows = read_glue_split(tmp_path, "sst2", "test")
    assert [(r["text_a"], r["label"]) for r in rows] == [("first", -1), ("second", -1)]


def test_cola_without_header(tmp_path):
    train = write(tmp_path, "CoLA/train.tsv", [
        "gj04\t1\t\tour friends won't buy this analysis .",
        "gj04\t0\t*\tone more pseudo generalization and i'm giving up .",
        'clc95\t1\t\the said "hi" .',
    ])
    write(tmp_path, "CoLA/dev.tsv", ["gj04\t0\t*\tbad sentence ."])
    write(tmp_path, "CoLA/test.tsv", ["index\tsentence", "0\ta test sentence ."])
    rows = read_glue_split(tmp_path, "cola", "train")
    assert len(rows) == data_lines(train, header=False) == 3  # first line is data
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert rows[2]["text_a"] == 'he said "hi" .'
    dd = load_glue_dir(tmp_path, "cola")
    assert list(dd) == ["train", "dev", "test"]
    assert dd["test"][0] == {"idx": 0, "text_a": "a test sentence .", "text_b": None, "label": -1}


def test_cola_wrong_field_count(tmp_path):
    path = write(tmp_path, "CoLA/train.tsv", ["gj04\t1\t\tok .", "gj04\t1\tno mark column ."])
    with pytest.raises(DataFormatError, match=rf"{path}:2: expected 4 tab-separated fields, got 3"):
        read_glue_split(tmp_path, "cola", "train")


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"


def test_stsb_float_labels(tmp_path):
    write(tmp_path, "STS-B/train.tsv", [
        STSB_HEADER + "\tscore",
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\ta plane takes off.\tan air plane is taking off.\t5.000",
        "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\ta man plays.\ta man sings.\t0.5",
    ])
    write(tmp_path, "STS-B/dev.tsv", [
        STSB_HEADER + "\tscore",
        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tx\ty\t3.8",
    ])
    write(tmp_path, "STS-B/test.tsv", [
        STSB_HEADER, "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tx\ty",
    ])
    rows = read_glue_split(tmp_path, "stsb", "train")
    assert [r["label"] for r in rows] == [5.0, 0.5]
    assert rows[0]["text_b"] == "an air plane is taking off."
    dd = load_glue_dir(tmp_path, "stsb")
    assert dd["dev"].features["label"].dtype == "float32"
    assert dd["dev"][0]["label"] == pytest.approx(3.8)
    assert dd["test"][0]["label"] == -1.0


def test_stsb_bad_score(tmp_path):
    path = write(tmp_path, "STS-B/dev.tsv", [
        STSB_HEADER + "\tscore", "0\tg\tf\ty\t0\tn\tn\tx\ty\tfive",
    ])
    with pytest.raises(DataFormatError, match=rf"{path}:2: unknown label 'five'"):
        read_glue_split(tmp_path, "stsb", "dev")


def test_mnli_matched_mismatched_and_unlabelled_test(tmp_path):
    write(tmp_path, "MNLI/train.tsv", [
        MNLI_TRAIN_HEADER,
        mnli_row(0, "p0", "h0", ["neutral", "neutral"]),
        mnli_row(1, 'he said "no', "h1", ["contradiction", "contradiction"]),
    ])
    five = ["entailment", "neutral", "entailment", "entailment", "entailment"]
    write(tmp_path, "MNLI/dev_matched.tsv", [
        MNLI_DEV_HEADER,
        mnli_row(0, "pm", "hm", five + ["entailment"]),
    ])
    write(tmp_path, "MNLI/dev_mismatched.tsv", [
        MNLI_DEV_HEADER,
        mnli_row(0, "pmm", "hmm", five + ["entailment"]),
        mnli_row(1, "pmm2", "hmm2", ["neutral"] * 5 + ["neutral"]),
    ])
    write(tmp_path, "MNLI/test_matched.tsv", [MNLI_TEST_HEADER, mnli_row(0, "pt", "ht", [])])
    write(tmp_path, "MNLI/test_mismatched.tsv", [MNLI_TEST_HEADER, mnli_row(0, "ptt", "htt", [])])

    train = read_glue_split(tmp_path, "mnli", "train")
    assert [(r["text_a"], r["text_b"], r["label"]) for r in train] == [
        ("p0", "h0", 1), ('he said "no', "h1", 2)]
    dd = load_glue_dir(tmp_path, "mnli")
    assert list(dd) == ["train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"]
    assert dd["dev_matched"]["label"][:] == [0]  # gold_label is the last of 16 columns
    assert dd["dev_mismatched"]["label"][:] == [0, 1]
    assert dd["test_matched"][0] == {"idx": 0, "text_a": "pt", "text_b": "ht", "label": -1}
    assert dd["test_mismatched"]["text_a"][:] == ["ptt"]


def test_mnli_dev_row_with_train_width_is_error(tmp_path):
    path = write(tmp_path, "MNLI/dev_matched.tsv", [
        MNLI_DEV_HEADER, mnli_row(0, "p", "h", ["neutral", "neutral"]),
    ])
    with pytest.raises(DataFormatError, match=rf"{path}:2: expected 16 tab-separated fields, got 12"):
        read_glue_split(tmp_path, "mnli", "dev_matched")


@pytest.mark.parametrize(
    "task, folder, header, row, expected, test_header, test_row",
    [
        ("mrpc", "MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
         '1\t702876\t702977\tAmrozi accused his brother , "the witness" .\tReferring to him .',
         ('Amrozi accused his brother , "the witness" .', "Referring to him .", 1),
         "index\t#1 ID\t#2 ID\t#1 String\t#2 String", "0\t1\t2\tta\ttb"),
        ("qqp", "QQP", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
         "7\t15\t16\tHow do I \"x\"?\tWhat is x?\t0", ('How do I "x"?', "What is x?", 0),
         "id\tquestion1\tquestion2", "0\tta\ttb"),
        ("qnli", "QNLI", "index\tquestion\tsentence\tlabel",
         "0\tWhat?\tThis.\tnot_entailment", ("What?", "This.", 1),
         "index\tquestion\tsentence", "0\tta\ttb"),
        ("rte", "RTE", "index\tsentence1\tsentence2\tlabel",
         "0\tA man.\tA person.\tentailment", ("A man.", "A person.", 0),
         "index\tsentence1\tsentence2", "0\tta\ttb"),
    ],
)
def test_pair_tasks(tmp_path, task, folder, header, row, expected, test_header, test_row):
    write(tmp_path, f"{folder}/train.tsv", [header, row])
    write(tmp_path, f"{folder}/dev.tsv", [header, row, row])
    dd = load_glue_dir(tmp_path, task)
    assert list(dd) == ["train", "dev"]  # no test file: no test split
    r = dd["train"][0]
    assert (r["text_a"], r["text_b"], r["label"]) == expected
    assert dd["dev"]["idx"][:] == [0, 1]
    write(tmp_path, f"{folder}/test.tsv", [test_header, test_row])
    dd = load_task(task, "glue_dir", glue_dir=tmp_path)
    assert dd["test"][0] == {"idx": 0, "text_a": "ta", "text_b": "tb", "label": -1}
    assert dd["train"].features["label"].dtype == "int64"


@pytest.mark.skipif(not REAL_SST2.is_dir(), reason="real SST-2 not available")
def test_real_sst2_row_counts():
    glue_dir = REAL_SST2.parent
    for split in ("train", "dev"):
        path = REAL_SST2 / f"{split}.tsv"
        rows = read_glue_split(glue_dir, "sst2", split)
        assert len(rows) == data_lines(path)
        assert {r["label"] for r in rows} == {0, 1}


@pytest.mark.parametrize("task, rel, lines", [
    ("sst2", "SST-2/train.tsv", ["sentence\tlabel"]),
    ("rte", "RTE/dev.tsv", ["index\tsentence1\tsentence2\tlabel"]),
    ("cola", "CoLA/train.tsv", []),
])
def test_split_without_data_rows_is_refused_naming_the_file(tmp_path, task, rel, lines):
    path = write(tmp_path, rel, lines, final=bool(lines))
    split = Path(rel).stem
    with pytest.raises(DataFormatError, match=rf"^{path}:\d+: .*no data rows"):
        read_glue_split(tmp_path, task, split)


def test_prepare_stage_refuses_an_empty_train_split(tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[2]
    glue = tmp_path / "glue"
    empty = write(glue, "SST-2/train.tsv", ["sentence\tlabel"])
    write(glue, "SST-2/dev.tsv", ["sentence\tlabel", "fine\t1"])
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(source="glue_dir", glue_dir=str(glue), tasks=["sst2"], inputs={"sst2": str(glue / "SST-2")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(root), "PKD_TRACKING": "off"}
    env.pop("PKD_PARAMS", None)
    proc = subprocess.run([sys.executable, str(root / "stages/prepare.py"), "--task", "sst2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {empty}:") and "no data rows" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing written


def test_mnli_carries_the_diagnostic_and_wnli_majority_splits(tmp_path):
    write_mnli_with_leaderboard_extras(tmp_path)
    dd = load_task("mnli", "glue_dir", glue_dir=tmp_path)
    assert dd["ax"]["idx"][:] == [0, 1, 2, 3, 4] and dd["ax"]["label"][:] == [-1] * 5
    assert dd["ax"][2]["text_a"] == "the cat sat 2" and dd["ax"][2]["text_b"] == "a cat sat 2"
    assert dd["wnli"]["label"][:] == [1, 1]  # WNLI train's majority class, for each test row
    write_mnli_with_leaderboard_extras(tmp_path / "no-wnli", wnli=False)
    dd = load_task("mnli", "glue_dir", glue_dir=tmp_path / "no-wnli")
    assert "ax" in dd and "wnli" not in dd
    assert "ax" not in load_task("sst2", "glue_dir", glue_dir=_sst2(tmp_path / "sst"))


def _sst2(root: Path) -> Path:
    write(root, "SST-2/train.tsv", ["sentence\tlabel", "good\t1"])
    write(root, "SST-2/dev.tsv", ["sentence\tlabel", "bad\t0"])
    return root
