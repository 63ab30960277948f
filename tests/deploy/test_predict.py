"""pkd predict on a saved tiny model and on its ONNX export; bad input gets one line and exit 2."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from pkd.cli.main import main
from pkd.data import get_task
from pkd.deploy.predict import Predictor, read_examples
from pkd.models.loading import build_teacher, load_tokenizer
from pkd.models.onnx import INT8_FILE, export_dir

SENTENCES = ["a wonderful, moving film", "not good at all", "it was fine",
             "the plot is dull but the acting is great and the music is a delight", "bad"]


def save_model(tiny_bert, path, task_name, pooling):
    model = build_teacher(str(tiny_bert), get_task(task_name), seed=0, pooling=pooling)
    model.save_pretrained(path)
    load_tokenizer(str(tiny_bert)).save_pretrained(path)
    return model


@pytest.fixture(scope="module")
def saved(tiny_bert, tmp_path_factory):
    """A mean-pooled single-sentence model, its ONNX export, and a [CLS] pair model."""
    root = tmp_path_factory.mktemp("predict")
    model = save_model(tiny_bert, root / "single", "builtin_sentiment", "mean")
    export_dir(model, root / "single-onnx", model_dir=root / "single")
    save_model(tiny_bert, root / "pair", "builtin_pair", "cls")
    return root


def cli(capsys, *args):
    """Run `pkd predict` in-process; (exit status, stdout, stderr)."""
    try:
        main(["predict", *map(str, args)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_saved_model_records_task_and_pooling(saved):
    p = Predictor(saved / "single")
    assert (p.task.name, p.runtime, p.labels) == ("builtin_sentiment", "pytorch", ["negative", "positive"])
    assert p.model.config.pkd_pooling == "mean"
    assert Predictor(saved / "pair").model.config.pkd_pooling == "cls"


def test_onnx_export_predicts_like_pytorch(saved):
    torch_p, onnx_p = Predictor(saved / "single"), Predictor(saved / "single-onnx")
    assert onnx_p.runtime == "onnx" and onnx_p.task.name == "builtin_sentiment"
    labels_t, probs_t = torch_p.predict(SENTENCES, batch_size=2)  # several padded batches
    labels_o, probs_o = onnx_p.predict(SENTENCES, batch_size=2)
    assert labels_t == labels_o
    np.testing.assert_allclose(probs_t, probs_o, atol=1e-5)
    # Dynamic padding: batching and padding must not change any example's logits.
    one_by_one = np.concatenate([onnx_p.logits([s]) for s in SENTENCES])
    np.testing.assert_allclose(onnx_p.logits(SENTENCES, batch_size=5), one_by_one, atol=1e-5)
    labels_q, probs_q = Predictor(saved / "single-onnx" / INT8_FILE).predict(SENTENCES)
    assert len(labels_q) == len(SENTENCES) and np.allclose(probs_q.sum(1), 1, atol=1e-5)


def test_cli_writes_labels_and_probabilities(saved, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SENTENCES) + "\n")
    outs = {}
    for name in ("single", "single-onnx"):
        code, _, err = cli(capsys, "--model", saved / name, "--input", src, "--output", tmp_path / f"{name}.tsv")
        assert code == 0, err
        outs[name] = (tmp_path / f"{name}.tsv").read_text().splitlines()
    rows = [r.split("\t") for r in outs["single"]]
    assert rows[0] == ["label", "prob_negative", "prob_positive"] and len(rows) == 1 + len(SENTENCES)
    assert all(r[0] in ("negative", "positive") and abs(float(r[1]) + float(r[2]) - 1) < 2e-4 for r in rows[1:])
    assert [r.split("\t")[0] for r in outs["single-onnx"]] == [r[0] for r in rows]


def test_console_script_reads_stdin_pairs(saved):
    proc = subprocess.run([sys.executable, "-m", "pkd.cli.main", "predict", "--model", str(saved / "pair"),
                           "--input", "-"], input="a cat sat\ta cat was sitting\nhello\tgoodbye\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "label\tprob_not_equivalent\tprob_equivalent" and len(lines) == 3


def test_console_script_predicts_with_an_onnx_export_of_a_mean_pooled_model(saved):
    # A fresh process: only `pkd predict`'s own imports may register the mean-pooled config type.
    proc = subprocess.run([sys.executable, "-m", "pkd.cli.main", "predict", "--model", str(saved / "single-onnx"),
                           "--input", "-"], input="a fine film\ndull\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3


@pytest.mark.parametrize("case, content, model, expected", [
    ("missing model", "good\n", "nowhere", "nowhere: model directory not found"),
    ("pair task, single sentences", "a cat sat\nhello\n", "pair",
     "in.txt:1: task builtin_pair takes a sentence pair (2 tab-separated fields), got 1 field(s)"),
    ("empty file", "", "single", "in.txt:1: empty input"),
    ("blank lines only", "\n\n", "single", "in.txt:1: empty input"),
    ("wrong field count", "good\nfine\nbad\tworse\n", "single",
     "in.txt:3: task builtin_sentiment takes one sentence (no tab), got 2 field(s)"),
    ("three fields for a pair", "a\tb\na\tb\tc\n", "pair", "in.txt:2: task builtin_pair takes a sentence pair"),
])
def test_bad_input_one_line_exit_2(saved, tmp_path, capsys, case, content, model, expected):
    src = tmp_path / "in.txt"
    src.write_text(content)
    model_path = saved / model if model != "nowhere" else tmp_path / "nowhere"
    code, _, err = cli(capsys, "--model", model_path, "--input", src, "--output", tmp_path / "o.tsv")
    assert code == 2, case
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "o.tsv").exists()


def test_read_examples_strips_bom_and_crlf():
    a, b = read_examples(["\ufeffx\ty\r\n", "u\tv"], "f", True, "builtin_pair")
    assert (a, b) == (["x", "u"], ["y", "v"])
