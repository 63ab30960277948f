"""ONNX export + int8 checked against PyTorch; ONNX rows in timing; the best student in MLflow's registry."""
import json
import sys

import numpy as np
import pandas as pd
import pytest

from pkd.data import get_task
from pkd.deploy import export as export_mod
from pkd.deploy.export import ExportCheckError, best_student, export_and_score
from pkd.deploy.predict import Predictor
from pkd.models.loading import build_teacher, load_tokenizer
from pkd.models.onnx import INT8_FILE, ONNX_FILE

TASK = get_task("builtin_sentiment")


@pytest.fixture(scope="module")
def student_dir(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("student")
    build_teacher(str(tiny_bert), TASK, seed=0, pooling="mean").save_pretrained(path)
    load_tokenizer(str(tiny_bert)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def exported(student_dir, tiny_splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return out, export_and_score(student_dir, out, tiny_splits["dev"], TASK)


def test_export_agrees_with_pytorch_and_scores_int8(exported, tiny_splits):
    out, record = exported
    assert (out / ONNX_FILE).is_file() and (out / INT8_FILE).is_file() and (out / "config.json").is_file()
    n = len(tiny_splits["dev"])
    assert record["n"] == n == 48
    fp32, int8, pt = record["onnx_fp32"], record["onnx_int8"], record["pytorch_fp32"]
    assert fp32["agreement"] == 1.0 and fp32["max_abs_diff"] < 1e-4
    assert fp32["accuracy"] == pt["accuracy"]
    # The int8 model is scored on the same dev set: a real accuracy, a real comparison.
    assert 0 <= int8["accuracy"] <= 1 and 0 < int8["agreement"] <= 1 and int8["max_abs_diff"] > fp32["max_abs_diff"]
    assert int8["size_mb"] < fp32["size_mb"]
    json.dumps(record)  # the stage writes it as a metrics file


def test_disagreement_fails_with_one_line(student_dir, tiny_splits, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "agreement", lambda a, b, r=False: {"max_abs_diff": 3.0, "agreement": 0.5})
    with pytest.raises(ExportCheckError, match=r"agree on 50.00% of 48 dev examples \(< 99.9%\)") as err:
        export_and_score(student_dir, tmp_path, tiny_splits["dev"], TASK)
    assert "\n" not in str(err.value)


def test_best_student_breaks_ties_by_speed():
    cands = [{"model": "kd-3", "score": 0.8, "depth": 3}, {"model": "ft-2", "score": 0.8, "depth": 2},
             {"model": "ft-3", "score": 0.7, "depth": 3}]
    assert best_student(cands, {})["model"] == "ft-2"  # no timing: fewer layers
    assert best_student(cands, {3: 1.0, 2: 2.0})["model"] == "kd-3"  # measured: faster wins
    assert best_student(cands[2:] + [{"model": "x", "score": 0.9, "depth": 3}], {})["model"] == "x"


def test_timing_adds_onnx_rows(tiny_bert, tiny_splits):
    from transformers import DataCollatorWithPadding

    from pkd.evaluation.timing import time_depths
    from pkd.models.families import MODEL_INPUTS

    dev = tiny_splits["dev"].select(range(8))
    features = [{k: r[k] for k in MODEL_INPUTS if k in r} for r in dev]
    record = time_depths(str(tiny_bert), [2], features, DataCollatorWithPadding(load_tokenizer(str(tiny_bert))),
                         2, warmup=0, repeats=1, pooling="mean", device="cpu", onnx=True)
    rows = {(r["runtime"], r["depth"]): r for r in record["models"]}
    assert set(rows) == {(rt, d) for rt in ("pytorch", "onnx_fp32", "onnx_int8") for d in (4, 2)}
    assert record["models"][0]["runtime"] == "pytorch" and record["models"][0]["model"] == "teacher"
    assert rows[("pytorch", 4)]["speedup"]["latency_b1_dev"] == 1.0  # the reference
    for depth in (4, 2):
        assert rows[("onnx_int8", depth)]["size_mb"] < rows[("onnx_fp32", depth)]["size_mb"]
        assert rows[("onnx_fp32", depth)]["latency_b1_len128_ms"]["median"] > 0
    assert rows[("pytorch", 2)]["size_mb"] < rows[("pytorch", 4)]["size_mb"]


def register_and_load(exported, tiny_splits, monkeypatch, tmp_path):
    """Log + register through pkd.pipeline.tracking as the stages do; load by registry name and predict."""
    import mlflow

    from pkd.deploy.export import deployable, input_example, registered_name
    from pkd.pipeline.tracking import stage_run

    out, _ = exported
    monkeypatch.setenv("PKD_TRACKING_STRICT", "1")
    tags = {"task": TASK.name, "strategy": "pkd_skip", "depth": 4}
    with stage_run("export", params={}, tags=tags) as run:
        uri = run.log_model(deployable(out, tmp_path / "deploy"), input_example(tiny_splits["dev"], False))
    assert uri
    with stage_run("register", params={}, tags=tags) as run:
        assert run.find_model({"stage": "export", **tags}) == uri
        version = run.register_model(uri, registered_name(TASK.name), tags={"pkd.depth": 4})
    assert version == "1"
    model = mlflow.pyfunc.load_model(f"models:/{registered_name(TASK.name)}/latest")
    texts = list(tiny_splits["dev"]["text_a"][:6])
    got = model.predict(pd.DataFrame({"text_a": texts}))
    assert list(got.columns) == ["label", "prob_negative", "prob_positive"]
    labels, probs = Predictor(out / INT8_FILE).predict(texts)
    assert got["label"].tolist() == labels
    np.testing.assert_allclose(got[["prob_negative", "prob_positive"]].to_numpy(), probs, atol=1e-6)
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["text_a"]
    assert model.metadata.get_output_schema().input_names() == ["label", "prob_negative", "prob_positive"]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    import mlflow

    for var in ("MLFLOW_TRACKING_URI", "PKD_MLFLOW_EXPERIMENT", "PKD_RUN_GROUP", "PKD_TRACKING", "DVC_ROOT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)  # the global URI the test set for loading


def test_registry_sqlite(exported, tiny_splits, repo, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")  # what a user sets to load the model
    register_and_load(exported, tiny_splits, monkeypatch, repo)


def test_registry_server(exported, tiny_splits, repo, server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("PKD_MLFLOW_EXPERIMENT", "pkd-registry")
    mlflow.set_tracking_uri(server)
    register_and_load(exported, tiny_splits, monkeypatch, repo)


@pytest.mark.slow
def test_pipeline_with_export_enabled(tmp_path_factory):
    """dvc repro of a tiny pipeline with export on: ONNX + int8 per student, ONNX timing rows,
    the best student registered and loadable by name, Table 4 in the report."""
    import mlflow
    import yaml
    from conftest import ROOT, make_repo, run_cmd, save_tiny_bert

    root = tmp_path_factory.mktemp("export-repo")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=["builtin_sentiment"], builtin_train_size=64, builtin_dev_size=32, max_seq_length=48)
    params["teacher"].update(checkpoint=str(save_tiny_bert(tmp_path_factory.mktemp("bert"))), epochs=1,
                             batch_size=16, train_eval_samples=16)
    params["student"].update(depths=[2], strategies=["ft", "kd"], finetune_strategies=["ft"], distill_strategies=["kd"],
                             epochs=1, batch_size=16, train_eval_samples=16)
    params["timing"].update(warmup=0, repeats=1, max_examples=8)
    params["export"].update(enabled=True, tasks=params["data"]["tasks"])
    env = make_repo(root, params)
    log = run_cmd(["dvc", "repro"], root, env, timeout=3600)  # ~10 min on an idle 2-core machine
    assert "Running stage 'export@builtin_sentiment-kd-2-42'" in log and "Running stage 'register@builtin_sentiment'" in log
    for name in ("ft-2-s42", "kd-2-s42"):
        record = json.loads((root / "metrics/export/builtin_sentiment" / f"{name}.json").read_text())
        assert record["onnx_fp32"]["agreement"] >= 0.999 and 0 <= record["onnx_int8"]["accuracy"] <= 1
        assert (root / "models/onnx/builtin_sentiment" / name / INT8_FILE).is_file()
    timing = json.loads((root / "metrics/timing.json").read_text())
    assert {r["runtime"] for r in timing["models"]} == {"pytorch", "onnx_fp32", "onnx_int8"}
    decision = json.loads((root / "metrics/deploy/builtin_sentiment.json").read_text())
    assert decision["registered_model"] == "pkd-builtin_sentiment" and decision["model"] in ("ft-2-s42", "kd-2-s42")
    assert "Table 4: deployment" in (root / "reports/report.md").read_text()
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        model = mlflow.pyfunc.load_model("models:/pkd-builtin_sentiment/latest")
        out = model.predict(pd.DataFrame({"text_a": ["a fine film", "dull"]}))
        assert len(out) == 2 and set(out["label"]) <= {"negative", "positive"}
    finally:
        mlflow.set_tracking_uri(None)
    # The exported model also answers `pkd predict`, from the DVC output directory.
    src = root / "in.txt"
    src.write_text("a fine film\ndull\n")
    run_cmd([sys.executable, "-m", "pkd.cli.main", "predict", "--model",
             str(root / "models/onnx/builtin_sentiment/ft-2-s42"), "--input", str(src), "--output", str(root / "o.tsv")],
            root, env)
    assert len((root / "o.tsv").read_text().splitlines()) == 3


def test_every_int8_recipe_name_has_options_and_an_unknown_one_is_refused(tmp_path):
    from pkd.allowed_values import INT8_RECIPES
    from pkd.models.onnx import RECIPE_OPTIONS, quantize_int8

    assert tuple(RECIPE_OPTIONS) == INT8_RECIPES
    with pytest.raises(ValueError, match="unknown int8 recipe 'int4'; allowed: default, per_channel"):
        quantize_int8(tmp_path / "model.onnx", tmp_path / "int8.onnx", "int4")


@pytest.mark.parametrize("recipe", ["per_channel", "fp32_head", "preprocess", "fused"])
def test_each_int8_recipe_gives_a_model_that_predicts_like_fp32(recipe, tiny_bert, tmp_path, monkeypatch):
    """Each recipe quantises (its int8 file is smaller than fp32) and keeps the logits close
    to the fp32 export's on a random tiny BERT, leaving nothing in the working directory."""
    import numpy as np

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    from pkd.models.loading import build_teacher
    from pkd.models.onnx import OnnxClassifier, export_onnx, quantize_int8

    model = build_teacher(str(tiny_bert), get_task("builtin_sentiment")).eval()
    fp32 = export_onnx(model, tmp_path / "model.onnx")
    int8 = quantize_int8(fp32, tmp_path / f"{recipe}.onnx", recipe)
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cwd", "model.onnx", f"{recipe}.onnx"])  # no leftovers
    assert list(cwd.iterdir()) == []
    batch = {"input_ids": np.array([[2, 40, 41, 42, 3]]), "attention_mask": np.ones((1, 5), dtype=np.int64),
             "token_type_ids": np.zeros((1, 5), dtype=np.int64)}
    ref, out = OnnxClassifier(fp32)(batch), OnnxClassifier(int8)(batch)
    assert np.abs(ref - out).max() < 0.1 * (np.abs(ref).max() + 1e-3) + 0.05
