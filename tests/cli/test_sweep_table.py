import json
from pathlib import Path

import pytest

from pkd.cli.sweep_table import best_on_dev, main
from pkd.pipeline import paths
from pkd.pipeline.experiments import collect_experiments
from pkd.pipeline.paths import parse_student_name


def eval_file(path, score, split="dev"):
    """{path: the evaluation record that the evaluate stage writes there, as `dvc exp show --json`
    gives it: DVC's metrics reader drops list and null values (`metric_names`, a teacher's `strategy`)}."""
    task, model = Path(path).parent.name, Path(path).stem
    strategy, depth, seed = parse_student_name(model) or (None, 6, 42)
    record = {"task": task, "model": model, "role": "student" if strategy else "teacher", "strategy": strategy,
              "seed": seed, "depth": depth, "teacher_depth": 6, "precision": "fp32", "main_metric": "accuracy",
              "metric_names": ["accuracy"], "splits": {split: {"accuracy": score, "n": 100}}}
    return {path: {"data": {k: v for k, v in record.items() if v is not None and not isinstance(v, list)}}}


def revision(rev, name, kd_alpha, skip_beta, scores):
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {
                "student": {"learning_rate": 5e-5},
                "strategies": {
                    "kd": {"alpha": kd_alpha, "beta": 0.0, "temperature": 10.0, "learning_rate": None},
                    "pkd_skip": {"alpha": 0.7, "beta": skip_beta, "temperature": 5.0, "learning_rate": 2e-5},
                },
            }}},
            "metrics": {
                **eval_file("metrics/eval/builtin_pair/kd-3.json", scores[0]),
                **eval_file("metrics/eval/builtin_pair/pkd_skip-3.json", scores[1]),
                **eval_file("metrics/eval/builtin_pair/teacher.json", 0.99),
                "metrics/timing.json": {"data": {"models": []}},
            },
        },
    }


# The shape of `dvc exp show --json`: baselines with their experiments nested.
EXP_SHOW = [
    {
        **revision("workspace", None, 0.7, 100.0, (0.80, 0.82)),
        "experiments": None,
    },
    {
        **revision("abc123", "main", 0.7, 100.0, (0.80, 0.82)),
        "experiments": [
            {"name": "exp-a", "revs": [revision("e1", "exp-a", 0.2, 10.0, (0.85, 0.81))]},
            {"name": "exp-b", "revs": [revision("e2", "exp-b", 0.5, 500.0, (0.83, 0.86))]},
        ],
    },
]


def test_collects_every_revision():
    names = [e["name"] for e in collect_experiments(EXP_SHOW)]
    assert names == ["workspace", "main", "exp-a", "exp-b"]


def test_best_on_dev_picks_the_winning_hyper_parameters():
    table = best_on_dev(collect_experiments(EXP_SHOW)).set_index("strategy")
    assert table.loc["kd", "dev_score"] == 0.85 and table.loc["kd", "alpha"] == 0.2
    assert table.loc["kd", "learning_rate"] == 5e-5  # falls back to student.learning_rate
    assert table.loc["pkd_skip", "dev_score"] == 0.86 and table.loc["pkd_skip", "beta"] == 500.0
    assert table.loc["pkd_skip", "experiment"] == "exp-b" and table.loc["pkd_skip", "learning_rate"] == 2e-5
    assert table.loc["kd", "candidates"] == 3  # workspace and main are one result
    assert "teacher" not in table.index


def test_mnli_uses_dev_matched(tmp_path):
    exp = revision("r", "x", 0.7, 10.0, (0.5, 0.5))
    exp["data"]["metrics"] = eval_file("metrics/eval/mnli/kd-6.json", 0.81, "dev_matched")
    table = best_on_dev(collect_experiments([exp]))
    assert table.loc[0, "metric"] == "dev_matched accuracy" and table.loc[0, "dev_score"] == 0.81


def test_command_writes_json_and_prints_markdown(tmp_path, capsys):
    source = tmp_path / "exp.json"
    source.write_text(json.dumps(EXP_SHOW))
    main(["--exp-show-json", str(source), "--output", str(tmp_path / "best.json")])
    out = capsys.readouterr().out
    assert "| builtin_pair" in out and "exp-b" in out
    rows = json.loads((tmp_path / "best.json").read_text())
    assert {(r["strategy"], r["dev_score"]) for r in rows} == {("kd", 0.85), ("pkd_skip", 0.86)}


def seeded_revision(rev, beta, scores_by_seed):
    metrics = {path: record for seed, score in scores_by_seed.items()
               for path, record in eval_file(f"metrics/eval/mrpc/pkd_skip-3-s{seed}.json", score).items()}
    return {"rev": rev, "name": rev, "data": {"rev": rev, "metrics": metrics, "params": {"params.yaml": {"data": {
        "student": {"learning_rate": 1e-4},
        "strategies": {"pkd_skip": {"alpha": 0.7, "beta": beta, "temperature": 10.0, "learning_rate": None}},
    }}}}}


def test_seeds_are_averaged_before_the_best_setting_is_picked():
    # beta=500 has the single best seed (0.90) but the lower mean (0.80 vs 0.84).
    exps = [seeded_revision("exp-lucky", 500.0, {1: 0.90, 2: 0.70, 3: 0.80}),
            seeded_revision("exp-steady", 100.0, {1: 0.83, 2: 0.84, 3: 0.85})]
    row = best_on_dev(collect_experiments(exps)).iloc[0]
    assert row["beta"] == 100.0 and row["experiment"] == "exp-steady"
    assert row["seeds"] == 3 and abs(row["dev_score"] - 0.84) < 1e-12
    assert abs(row["dev_std"] - 0.01) < 1e-12 and row["candidates"] == 2


def test_queued_running_and_failed_experiments_are_left_out():
    """dvc exp show lists a queued or running experiment with the baseline's metrics under
    its own name: counted, it would be a candidate that never ran."""
    running = {"name": "exp-run", "executor": {"state": "running", "name": "dvc-task"},
               "revs": [revision("e3", "exp-run", 0.9, 1000.0, (0.99, 0.99))]}
    queued = {"name": "exp-q", "executor": {"state": "queued", "name": "dvc-task"},
              "revs": [revision("e4", "exp-q", 0.3, 20.0, (0.98, 0.98))]}
    done = {"name": "exp-a", "executor": {"state": "success", "name": None},
            "revs": [revision("e1", "exp-a", 0.2, 10.0, (0.85, 0.81))]}
    exp_show = [{**revision("abc123", "main", 0.7, 100.0, (0.80, 0.82)), "experiments": [running, queued, done]}]
    assert [e["name"] for e in collect_experiments(exp_show)] == ["main", "exp-a"]


def test_a_record_out_of_schema_is_refused_naming_its_file():
    exp = revision("r", "x", 0.7, 10.0, (0.5, 0.5))
    bad = eval_file("metrics/eval/mrpc/kd-3-s1.json", 0.7)
    del bad["metrics/eval/mrpc/kd-3-s1.json"]["data"]["main_metric"]
    exp["data"]["metrics"] = bad
    with pytest.raises(ValueError, match=r"metrics/eval/mrpc/kd-3-s1.json: missing key\(s\) \['main_metric'\]"):
        best_on_dev(collect_experiments([exp]))


def test_an_eval_file_is_recognised_by_its_path_alone():
    assert paths.parse_evaluation("metrics/eval/mrpc/kd-3-s1.json") == ("mrpc", "kd-3-s1")
    assert paths.parse_evaluation("sub/dir/metrics/eval/mnli/teacher.json") == ("mnli", "teacher")
    assert paths.parse_evaluation(paths.evaluation("rte", "ft-2-s7")) == ("rte", "ft-2-s7")
    for other in ("metrics/train/mrpc/kd-3-s1.json", "metrics/eval/mrpc.json", "metrics/eval/mrpc/kd-3-s1.csv",
                  "metrics/timing.json"):
        assert paths.parse_evaluation(other) is None, other
