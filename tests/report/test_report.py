import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pkd.cli.sweep_table import best_on_dev
from pkd.method import strategies as registry
from pkd.report import OUTPUTS, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEACHER_DEPTH = 6
# model -> (mnli dev_matched acc, mnli dev_mismatched acc, mrpc f1, mrpc acc)
SCORES = {
    "teacher": (0.840, 0.850, 0.900, 0.870),
    "ft-3-s42": (0.750, 0.760, 0.860, 0.820),
    "kd-3-s42": (0.760, 0.770, 0.881, 0.840),
    "pkd_skip-3-s42": (0.780, 0.790, 0.885, 0.846),
    "pkd_last-3-s42": (0.770, 0.775, 0.883, 0.843),
    "ft-2-s42": (0.700, 0.710, 0.820, 0.780),
    "kd-2-s42": (0.710, 0.720, 0.830, 0.790),
    "pkd_skip-2-s42": (0.720, 0.731, 0.840, 0.800),
    "pkd_last-2-s42": (0.715, 0.725, 0.835, 0.795),
}
CONFIG = {
    "preset": "tiny",
    "teacher_checkpoint": "models/teacher-6L",
    "tasks": ["mrpc", "mnli"],
    "depths": [3, 2],
    "data_source": "builtin",
    "seed": 42,
}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _eval_record(task: str, model: str, splits: dict, metric_names: list[str]) -> dict:
    if model == "teacher":
        role, strategy, depth, seed = "teacher", None, TEACHER_DEPTH, 42
    else:
        strategy, depth, seed = model.rsplit("-", 2)
        role, depth, seed = "student", int(depth), int(seed.removeprefix("s"))
    return {"task": task, "model": model, "role": role, "strategy": strategy, "seed": seed,
            "depth": depth, "teacher_depth": TEACHER_DEPTH, "main_metric": "accuracy",
            "metric_names": metric_names, "splits": splits}


def _timing_entry(model: str, depth: int, speed: float) -> dict:
    lat, thr = 6.0 / speed, 900.0 * speed
    return {
        "model": model, "depth": depth, "parameters": 4_000_000 + 3_500_000 * depth,
        "latency_b1_dev_ms": {"median": lat, "p25": lat - 0.1, "p75": lat + 0.1},
        "throughput_b32_dev": {"median": thr, "p25": thr - 10, "p75": thr + 10},
        "latency_b1_len128_ms": {"median": 2 * lat, "p25": 2 * lat - 0.1, "p75": 2 * lat + 0.1},
        "throughput_b32_len128": {"median": thr / 2, "p25": thr / 2 - 5, "p75": thr / 2 + 5},
        "speedup": {"latency_b1_dev": speed, "throughput_b32_dev": speed,
                    "latency_b1_len128": speed, "throughput_b32_len128": speed},
    }


def write_fixture(root: Path) -> Path:
    metrics = root / "metrics"
    for model, (m, mm, f1, acc) in SCORES.items():
        _write(metrics / "eval" / "mnli" / f"{model}.json", _eval_record(
            "mnli", model, {"dev_matched": {"accuracy": m, "n": 900},
                            "dev_mismatched": {"accuracy": mm, "n": 950}}, ["accuracy"]))
        _write(metrics / "eval" / "mrpc" / f"{model}.json", _eval_record(
            "mrpc", model, {"dev": {"f1": f1, "accuracy": acc, "n": 408}}, ["f1", "accuracy"]))
        for task, dev in (("mnli", m), ("mrpc", acc)):
            # KD-style curves: train keeps rising, dev flattens out
            history = [{"epoch": e, "train_accuracy": min(0.99, dev - 0.05 + 0.06 * e),
                        "dev_accuracy": dev - 0.03 / e, "loss": 1.0 / e}
                       for e in (1, 2, 3, 4)]
            if model != "teacher":
                for rec in history:
                    rec.update(loss_ce=0.5 / rec["epoch"], loss_ds=0.3, loss_pt=0.01)
            _write(metrics / "train" / task / f"{model}.json", history)
    _write(metrics / "timing.json", {
        "device": "cpu", "threads": 2, "torch": "2.13.0", "warmup": 3, "repeats": 10,
        "task": "mrpc",
        "models": [_timing_entry("teacher", 6, 1.0), _timing_entry("student-3", 3, 1.9),
                   _timing_entry("student-2", 2, 2.8)],
    })
    _write(metrics / "sweep_best.json", [
        {"task": "mrpc", "strategy": "pkd_skip", "depth": 3, "dev_score": 0.846,
         "temperature": 10, "alpha": 0.7, "beta": 100, "learning_rate": 5e-5},
    ])
    return metrics


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _cell(table: pd.DataFrame, model: str, layers: str, column: str) -> str:
    hit = table[(table["Model"] == model) & (table["Layers"] == layers)]
    assert len(hit) == 1, (model, layers, table)
    return hit.iloc[0][column]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    metrics = write_fixture(root)
    out = root / "out"
    return build_report(metrics, out, CONFIG), out


def test_writes_every_output_and_nothing_else(report):
    paths, out = report
    assert set(paths) == set(OUTPUTS)
    assert all(p.parent == out and p.exists() for p in paths.values())
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temp files left


def test_table1_layout_and_cells(report):
    paths, _ = report
    t1 = _csv(paths["table1_main.csv"])
    assert list(t1.columns) == ["Model", "Layers", "Seeds", "mrpc", "mnli-m", "mnli-mm", "Average"]
    assert set(t1["Seeds"]) == {"1"}
    assert list(zip(t1["Model"], t1["Layers"])) == [
        ("Teacher", "6"), ("FT", "3"), ("KD", "3"), ("PKD-Skip", "3"),
        ("FT", "2"), ("KD", "2"), ("PKD-Skip", "2")]
    assert _cell(t1, "KD", "3", "mrpc") == "88.1/84.0"
    assert _cell(t1, "KD", "3", "mnli-m") == "76.0"
    assert _cell(t1, "KD", "3", "mnli-mm") == "77.0"
    # The paper's Table 1 PKD row is PKD-Skip; PKD-Last is in Table 2 only
    assert _cell(t1, "PKD-Skip", "3", "mrpc") == "88.5/84.6"
    assert _cell(t1, "Teacher", "6", "mrpc") == "90.0/87.0"
    # Average of the main metrics (MRPC: accuracy, not F1) over the three columns
    assert _cell(t1, "KD", "3", "Average") == "79.0"            # (76 + 77 + 84) / 3
    assert _cell(t1, "PKD-Skip", "3", "Average") == "80.5"           # (78 + 79 + 84.6) / 3 = 80.53
    assert _cell(t1, "Teacher", "6", "Average") == "85.3"       # (84 + 85 + 87) / 3 = 85.33
    assert _cell(t1, "PKD-Skip", "2", "mnli-mm") == "73.1"


def test_table2_skip_vs_last(report):
    paths, _ = report
    t2 = _csv(paths["table2_skip_vs_last.csv"])
    assert list(zip(t2["Model"], t2["Layers"])) == [
        ("PKD-Skip", "3"), ("PKD-Last", "3"), ("PKD-Skip", "2"), ("PKD-Last", "2")]
    assert _cell(t2, "PKD-Last", "3", "mrpc") == "88.3/84.3"
    assert _cell(t2, "PKD-Last", "3", "Average") == "79.6"     # (77 + 77.5 + 84.3) / 3 = 79.6
    assert _cell(t2, "PKD-Skip", "2", "mnli-m") == "72.0"


def test_table3_inference(report):
    paths, _ = report
    t3 = _csv(paths["table3_inference.csv"]).set_index("Model")
    assert list(t3.index) == ["teacher", "student-3", "student-2"]
    s3 = t3.loc["student-3"]
    assert s3["Layers"] == "3"
    assert s3["Parameters (M)"] == "14.5"                      # 4.0M + 3 * 3.5M
    assert s3["Latency b1, dev lengths (ms)"] == "3.16 [3.06, 3.26]"  # 6.0 / 1.9
    assert s3["Throughput b32, dev lengths (ex/s)"] == "1710 [1700, 1720]"
    assert s3["Speed-up b32 (dev)"] == "1.90x"
    assert s3["Layer ratio N/M"] == "2.00x"
    assert t3.loc["teacher", "Speed-up b1 (dev)"] == "1.00x"
    assert t3.loc["student-2", "Layer ratio N/M"] == "3.00x"


def test_markdown_has_numbers_config_and_sources(report):
    paths, _ = report
    md = paths["report.md"].read_text()
    assert "| KD | 3 | 1 | 88.1/84.0 | 76.0 | 77.0 | 79.0 |" in md
    assert "| Teacher | 6 | 1 | 90.0/87.0 | 84.0 | 85.0 | 85.3 |" in md
    assert "PKD-Skip, the paper's main method" in md
    assert "models/teacher-6L" in md and "| seed | 42 |" in md
    assert "`eval/mrpc/kd-3-s42.json`" in md and "`train/mnli/pkd_skip-2-s42.json`" in md
    assert "`timing.json`" in md and "sweep_best.json" in md
    for name in ("fig_metric_vs_depth.png", "fig_train_vs_dev.png",
                 "fig_accuracy_vs_speedup.png"):
        assert f"]({name})" in md


def test_html_is_self_contained(report):
    paths, _ = report
    page = paths["report.html"].read_text()
    assert page.count("data:image/png;base64,") == 3
    assert 'src="fig_' not in page
    assert "<td>88.1/84.0</td>" in page
    assert "<table" in page


def test_pngs_are_valid(report):
    paths, _ = report
    for name in OUTPUTS:
        if name.endswith(".png"):
            data = paths[name].read_bytes()
            assert data.startswith(PNG_MAGIC), name
            assert len(data) > 5000, name  # a real plot, not an empty canvas


def test_task_order_from_comma_string_and_score_histories(tmp_path):
    # The report stage passes tasks as one string "mrpc, mnli"; tasks whose main metric is not
    # accuracy have train_score/dev_score histories instead of *_accuracy.
    metrics = write_fixture(tmp_path)
    for path in (metrics / "train" / "mrpc").glob("*.json"):
        history = json.loads(path.read_text())
        for rec in history:
            rec["train_score"] = rec.pop("train_accuracy")
            rec["dev_score"] = rec.pop("dev_accuracy")
        path.write_text(json.dumps(history))
    paths = build_report(metrics, tmp_path / "out", {"tasks": "mrpc, mnli"})
    t1 = _csv(paths["table1_main.csv"])
    assert list(t1.columns)[3:6] == ["mrpc", "mnli-m", "mnli-mm"]
    assert paths["fig_train_vs_dev.png"].read_bytes().startswith(PNG_MAGIC)


def test_missing_cell_blanks_the_average(tmp_path):
    metrics = write_fixture(tmp_path)
    (metrics / "eval" / "mnli" / "kd-2-s42.json").unlink()
    shutil.rmtree(metrics / "train")
    (metrics / "timing.json").unlink()
    paths = build_report(metrics, tmp_path / "out", {"seed": 1})
    t1 = _csv(paths["table1_main.csv"])
    assert list(t1.columns)[3:6] == ["mnli-m", "mnli-mm", "mrpc"]  # no order given: sorted
    assert _cell(t1, "KD", "2", "mnli-m") == "-"
    assert _cell(t1, "KD", "2", "mrpc") == "83.0/79.0"
    assert _cell(t1, "KD", "2", "Average") == "-"
    assert _csv(paths["table3_inference.csv"]).empty
    assert "No `timing.json` was found" in paths["report.md"].read_text()
    for name in ("fig_train_vs_dev.png", "fig_accuracy_vs_speedup.png"):
        assert paths[name].read_bytes().startswith(PNG_MAGIC)


def test_empty_metrics_dir_raises_naming_it(tmp_path):
    (tmp_path / "metrics").mkdir()
    with pytest.raises(ValueError, match=r"no evaluation metrics found.*metrics[/\\]eval"):
        build_report(tmp_path / "metrics", tmp_path / "out", CONFIG)
    assert not (tmp_path / "out").exists()


def test_misplaced_eval_file_raises(tmp_path):
    metrics = write_fixture(tmp_path)
    # kd-3's numbers under kd-2's name: the content disagrees with the path
    (metrics / "eval" / "mrpc" / "kd-3-s42.json").replace(metrics / "eval" / "mrpc" / "kd-2-s42.json")
    with pytest.raises(ValueError, match="kd-2-s42.json"):
        build_report(metrics, tmp_path / "out", CONFIG)


# Three seeds of KD and PKD-Skip at depth 3 on MRPC (accuracy is the main metric):
# per-seed PKD-Skip - KD = +1, +2, +3 points (mean 2, sd 1) on mrpc -> t-interval
# 2 ± 4.303 / sqrt(3) = [-0.5, +4.5]: spans 0; FT is 5 points below KD on every seed.
SEEDED = {
    "ft-3": [(0.80, 0.75), (0.81, 0.76), (0.82, 0.77)],
    "kd-3": [(0.85, 0.80), (0.86, 0.81), (0.87, 0.82)],
    "pkd_skip-3": [(0.86, 0.81), (0.88, 0.83), (0.90, 0.85)],
    "pkd_last-3": [(0.85, 0.80), (0.86, 0.80), (0.87, 0.80)],
}


def write_seeded_fixture(root: Path) -> Path:
    metrics = root / "metrics"
    _write(metrics / "eval" / "mrpc" / "teacher.json", _eval_record(
        "mrpc", "teacher", {"dev": {"f1": 0.9, "accuracy": 0.86, "n": 408}}, ["f1", "accuracy"]))
    for group, runs in SEEDED.items():
        for seed, (f1, acc) in zip((1, 2, 3), runs):
            model = f"{group}-s{seed}"
            _write(metrics / "eval" / "mrpc" / f"{model}.json", _eval_record(
                "mrpc", model, {"dev": {"f1": f1, "accuracy": acc, "n": 408}}, ["f1", "accuracy"]))
    return metrics


def test_seeds_give_mean_std_cells_and_paired_intervals(tmp_path):
    paths = build_report(write_seeded_fixture(tmp_path), tmp_path / "out", {"tasks": ["mrpc"]})
    t1 = _csv(paths["table1_main.csv"])
    assert _cell(t1, "KD", "3", "Seeds") == "3" and _cell(t1, "Teacher", "6", "Seeds") == "1"
    # KD: F1 86.0 ± 1.0, accuracy 81.0 ± 1.0 (sample std over 3 seeds)
    assert _cell(t1, "KD", "3", "mrpc") == "86.0±1.0/81.0±1.0"
    assert _cell(t1, "PKD-Skip", "3", "mrpc") == "88.0±2.0/83.0±2.0"
    assert _cell(t1, "PKD-Skip", "3", "Average") == "83.0±2.0"
    paired = _csv(paths["table1_paired_differences.csv"])
    row = paired[(paired["Comparison"] == "PKD-Skip − KD") & (paired["Column"] == "mrpc")].iloc[0]
    assert (row["Seeds"], row["Mean difference"], row["95% interval"]) == ("3", "+2.0", "[-0.5, +4.5]")
    assert row["Verdict"] == "no measurable difference"
    row = paired[(paired["Comparison"] == "KD − FT") & (paired["Column"] == "mrpc")].iloc[0]
    # every seed +5.0: sd 0, the interval is the point +5 and excludes 0
    assert (row["Mean difference"], row["95% interval"], row["Verdict"]) == ("+5.0", "[+5.0, +5.0]", "KD > FT")
    row = paired[(paired["Comparison"] == "PKD-Skip − PKD-Last") & (paired["Column"] == "mrpc")].iloc[0]
    # +1, +3, +5: mean 3, sd 2, half-width 4.303 * 2 / sqrt(3) = 4.97 -> [-2.0, +8.0]
    assert (row["Mean difference"], row["95% interval"], row["Verdict"]) == ("+3.0", "[-2.0, +8.0]", "no measurable difference")
    md = paths["report.md"].read_text()
    assert "Paired t-interval over seeds" in md and "no measurable difference" in md



def test_a_projected_strategy_is_labelled_so_wherever_it_appears(tmp_path):
    """The label comes from build_report's arguments (params.yaml's projection switches), not from
    anything set before: the same metrics give plain labels without it."""
    metrics = write_seeded_fixture(tmp_path)
    plain = build_report(metrics, tmp_path / "plain", {"tasks": ["mrpc"]})
    paths = build_report(metrics, tmp_path / "out", {"tasks": ["mrpc"]}, projected={"pkd_skip"})
    t1 = _csv(paths["table1_main.csv"])
    assert _cell(t1, "PKD-Skip + proj", "3", "mrpc") == "88.0±2.0/83.0±2.0"
    assert "PKD-Skip + proj" in set(_csv(paths["table2_skip_vs_last.csv"])["Model"])
    assert "PKD-Skip + proj − KD" in set(_csv(paths["table1_paired_differences.csv"])["Comparison"])
    assert "+ proj" not in plain["report.md"].read_text()

def test_retention_beside_the_authors(tmp_path):
    metrics = write_seeded_fixture(tmp_path)
    # rename the task to sst2 so the authors' numbers apply: teacher 86.0, PKD-Skip 3L mean 83.0
    for path in sorted((metrics / "eval" / "mrpc").glob("*.json")):
        record = json.loads(path.read_text())
        record["task"] = "sst2"
        record["splits"]["dev"] = {"accuracy": record["splits"]["dev"]["accuracy"], "n": 872}
        record["metric_names"] = ["accuracy"]
        _write(metrics / "eval" / "sst2" / path.name, record)
        path.unlink()
    paths = build_report(metrics, tmp_path / "out", {"tasks": ["sst2"]})
    ret = _csv(paths["table1_retention.csv"])
    # 6-layer teacher, 3-layer students: 2x, compared with the authors' 6-layer (12 -> 6)
    # PKD-Skip: 91.1 / 92.6 = 98.4%; ours 83.0 / 86.0 = 96.5%
    assert _cell(ret, "PKD-Skip", "3", "N/M") == "2x"
    assert _cell(ret, "PKD-Skip", "3", "sst2") == "96.5 (98.4)"
    assert _cell(ret, "FT", "3", "sst2") == "88.4 (96.9)"   # 76.0 / 86.0; theirs 89.7 / 92.6
    md = paths["report.md"].read_text()
    assert "The authors' own dev accuracy" in md and "88.1 (95.1%)" in md  # their 3L PKD on SST-2


def _export_record(task: str, model: str, scores: tuple[float, float, float]) -> dict:
    strategy, depth, seed = model.rsplit("-", 2)
    def variant(acc, agree, diff, size):
        return {"accuracy": acc, "agreement": agree, "max_abs_diff": diff, "size_mb": size}

    return {"task": task, "model": model, "strategy": strategy, "depth": int(depth), "seed": int(seed[1:]), "enabled": True,
            "main_metric": "accuracy", "n": 100,
            "pytorch_fp32": {"accuracy": scores[0], "size_mb": 60.0},
            "onnx_fp32": variant(scores[1], 1.0, 2e-6, 61.0), "onnx_int8": variant(scores[2], 0.97, 0.2, 16.0)}


def test_deployment_table_onnx_timing_rows_and_paper_points(tmp_path):
    from pkd.report import tables
    from pkd.report.build import _speedup_points, paper_points
    from pkd.report.load import load_metrics

    metrics = write_fixture(tmp_path)
    for task in ("mnli", "mrpc"):
        _write(metrics / "export" / task / "pkd_skip-3-s42.json", _export_record(task, "pkd_skip-3-s42", (0.8, 0.8, 0.79)))
        _write(metrics / "export" / task / "kd-2-s42.json", {"task": task, "model": "kd-2-s42", "enabled": False})
    timing = json.loads((metrics / "timing.json").read_text())
    for runtime, factor in (("onnx_fp32", 1.2), ("onnx_int8", 2.0)):
        for entry in (_timing_entry("teacher", 6, factor), _timing_entry("student-3", 3, 1.9 * factor)):
            timing["models"].append({**entry, "runtime": runtime, "size_mb": 10.0})
    _write(metrics / "timing.json", timing)
    paths = build_report(metrics, tmp_path / "out", CONFIG)

    t4 = _csv(paths["table4_deployment.csv"])
    assert len(t4) == 2  # the disabled kd-2 records are not rows
    row = t4[t4["Task"] == "mrpc"].iloc[0]
    assert (row["Model"], row["Layers"], row["Seed"], row["ONNX fp32"], row["ONNX int8"]) == ("PKD-Skip", "3", "42", "80.0", "79.0")
    assert (row["ONNX fp32 agreement (%)"], row["int8 agreement (%)"], row["Size int8 (MB)"]) == ("100.0", "97.0", "16.0")
    t3 = _csv(paths["table3_inference.csv"]).set_index("Model")
    assert t3.loc["student-3 (ONNX Runtime int8)", "Speed-up b32 (dev)"] == "3.80x"
    assert t3.loc["teacher", "Runtime"] == "PyTorch fp32" and t3.loc["teacher", "Speed-up b1 (dev)"] == "1.00x"
    assert "Table 4: deployment" in paths["report.md"].read_text()

    m = load_metrics(metrics)
    columns = tables.score_columns(m.evals, "dev", ["mrpc", "mnli"])
    summ = tables.summary(tables.scores(m, columns), columns)
    pts = _speedup_points(m, summ, columns).set_index(["label", "runtime"])
    assert pts.loc[("Teacher 6L", "pytorch"), "score"] == pytest.approx(100)
    int8 = pts.loc[("PKD-Skip 3L", "onnx_int8")]
    assert int8["speedup"] == pytest.approx(3.8)
    # relative to the teacher on the splits export scores: mrpc dev accuracy 0.87, mnli dev_matched 0.84
    assert int8["score"] == pytest.approx(100 * 0.79 / ((0.87 + 0.84) / 2))
    paper = {p["label"]: p for p in paper_points()}
    assert paper["Paper PKD 6L"]["speedup"] == 1.94 and paper["Paper PKD 6L"]["score"] == pytest.approx(98.26, abs=0.01)
    assert paper["Paper PKD 3L"]["speedup"] == 3.73 and paper["Paper PKD 3L"]["score"] == pytest.approx(92.77, abs=0.01)


@pytest.fixture
def pkd_first():
    """A strategy of one's own, registered as README's "Add your own strategy" does."""
    strategy = registry.register(registry.Strategy("pkd_first", "PKD-First", soft_labels=True,
                                                   layers=lambda n, m: list(range(1, m))))
    yield strategy
    registry.unregister("pkd_first")


def _history(dev: float) -> list[dict]:
    return [{"epoch": e, "train_accuracy": dev - 0.05 + 0.04 * e, "dev_accuracy": dev - 0.02 / e} for e in (1, 2, 3)]


def test_a_registered_strategy_reaches_every_table_figure_and_the_sweep(tmp_path, pkd_first):
    """Registered in pkd.method.strategies and nowhere else, a strategy shows up in Table 1, the paired
    differences, Table 2 (it has a patient loss), Figure 2 and the sweep table."""
    metrics = write_seeded_fixture(tmp_path)
    # PKD-First is 3 points above KD on every seed (accuracy, the main metric).
    for seed, (f1, acc) in zip((1, 2, 3), [(0.87, 0.83), (0.88, 0.84), (0.89, 0.85)]):
        model = f"pkd_first-3-s{seed}"
        _write(metrics / "eval" / "mrpc" / f"{model}.json", _eval_record(
            "mrpc", model, {"dev": {"f1": f1, "accuracy": acc, "n": 408}}, ["f1", "accuracy"]))
    for seed in (1, 2, 3):
        _write(metrics / "train" / "mrpc" / f"kd-3-s{seed}.json", _history(0.81))
    without = build_report(metrics, tmp_path / "without", {"tasks": ["mrpc"]})
    for seed in (1, 2, 3):
        _write(metrics / "train" / "mrpc" / f"pkd_first-3-s{seed}.json", _history(0.84))

    experiment = {"name": "exp-first", "rev": "e1", "params": {"strategies": {"pkd_first": {
        "alpha": 0.5, "beta": 10.0, "temperature": 5.0, "learning_rate": 3e-5}}}, "metrics": {
        f"metrics/eval/mrpc/pkd_first-3-s{seed}.json": json.loads(
            (metrics / "eval" / "mrpc" / f"pkd_first-3-s{seed}.json").read_text()) for seed in (1, 2, 3)}}
    sweep = best_on_dev([experiment])
    assert list(sweep["strategy"]) == ["pkd_first"] and sweep.iloc[0]["beta"] == 10.0
    _write(metrics / "sweep_best.json", sweep.to_dict(orient="records"))
    paths = build_report(metrics, tmp_path / "out", {"tasks": ["mrpc"]})

    t1 = _csv(paths["table1_main.csv"])
    assert list(t1["Model"]) == ["Teacher", "FT", "KD", "PKD-Skip", "PKD-First"]
    assert _cell(t1, "PKD-First", "3", "mrpc") == "88.0±1.0/84.0±1.0"
    t2 = _csv(paths["table2_skip_vs_last.csv"])
    assert list(t2["Model"]) == ["PKD-Skip", "PKD-Last", "PKD-First"]
    paired = _csv(paths["table1_paired_differences.csv"])
    row = paired[(paired["Comparison"] == "PKD-First − KD") & (paired["Column"] == "mrpc")].iloc[0]
    assert (row["Mean difference"], row["95% interval"], row["Verdict"]) == ("+3.0", "[+3.0, +3.0]", "PKD-First > KD")
    assert {c for c in paired["Comparison"] if c.startswith("PKD-First")} == {
        "PKD-First − FT", "PKD-First − KD", "PKD-First − PKD-Skip", "PKD-First − PKD-Last"}
    md = paths["report.md"].read_text()
    assert "accuracy per epoch for KD, PKD-Skip, PKD-First" in md  # Figure 2's caption
    # Figure 2 draws its curves: the same report without its histories gives another image.
    assert paths["fig_train_vs_dev.png"].read_bytes() != without["fig_train_vs_dev.png"].read_bytes()
    assert "| mrpc | pkd_first | 3 |" in md  # the sweep table
