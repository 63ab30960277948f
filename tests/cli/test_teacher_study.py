"""The larger-teacher study: its table from experiments, its preset, and an offline run of all three set-ups."""
import json
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, make_repo, run_cmd, save_tiny_bert

from pkd.cli.presets import apply_preset
from pkd.cli.teacher_study import (
    ROW_LABELS,
    Setup,
    StudyError,
    authors,
    render,
    study_values,
    summarise,
)
from pkd.pipeline.params import parse_params, split_strategies

TASK = "builtin_pair"


def record(task, model, accuracy, depth, role="student", strategy=None, seed=None):
    """An eval record as `dvc exp show --json` returns it: without its lists and nulls."""
    rec = {"task": task, "model": model, "role": role, "strategy": strategy, "depth": depth, "teacher_depth": 8,
           "main_metric": "accuracy", "splits": {"dev": {"accuracy": accuracy, "n": 32}}}
    if seed is not None:
        rec["seed"] = seed
    return {k: v for k, v in rec.items() if v is not None}


def experiment(name, teacher, init, results, seed=42, strategies=("kd", "pkd_skip")):
    """One entry as pkd.pipeline.experiments.collect_experiments returns it."""
    metrics = {}
    for model, acc in results.items():
        strategy, _, depth = model.rpartition("-")
        rec = (record(TASK, model, acc, 8, role="teacher") if model == "teacher"
               else record(TASK, model, acc, int(depth), strategy=strategy))
        metrics[f"metrics/eval/{TASK}/{model}.json"] = rec
    params = {"seed": seed, "teacher": {"checkpoint": teacher},
              "student": {"init": "pretrained", "init_checkpoint": init, "strategies": list(strategies)}}
    return {"name": name, "rev": name, "params": params, "metrics": metrics}


SETUP = Setup("B", "L")


def summary_of(experiments, **kw):
    return summarise(study_values(experiments, SETUP, **kw)).set_index(["row", "column"])


def test_each_setup_is_recognised_from_its_checkpoints():
    assert SETUP.of({"teacher": {"checkpoint": "B"}, "student": {"init_checkpoint": None}}) == "#1"
    assert SETUP.of({"teacher": {"checkpoint": "L"}, "student": {"init_checkpoint": "B"}}) == "#2"
    assert SETUP.of({"teacher": {"checkpoint": "L"}, "student": {}}) == "#3"
    assert SETUP.of({"teacher": {"checkpoint": "B"}, "student": {"init_checkpoint": "L"}}) is None
    assert SETUP.of({"teacher": {"checkpoint": "L"}, "student": {"init": "finetuned"}}) is None


def test_rows_take_kd_and_pkd_and_the_right_teacher():
    exps = [
        experiment("one", "B", None, {"teacher": 0.80, "kd-2": 0.70, "pkd_skip-2": 0.72, "pkd_last-2": 0.5}),
        experiment("two", "L", "B", {"teacher": 0.85, "kd-2": 0.71}, strategies=("kd",)),
        experiment("three", "L", None, {"teacher": 0.85, "kd-2": 0.60, "pkd_skip-2": 0.61}),
        experiment("other", "X", None, {"teacher": 0.1, "kd-2": 0.1}),
    ]
    s = summary_of(exps)
    expected = {"teacher-base": 0.80, "teacher-large": 0.85, "#1 KD": 0.70, "#1 PKD": 0.72,
                "#2 KD": 0.71, "#3 KD": 0.60, "#3 PKD": 0.61}
    assert {row: s.at[(row, TASK), "mean"] for row, _ in s.index} == expected
    # The large teacher appears in two set-ups with the same result: one value, both runs named.
    assert s.at[("teacher-large", TASK), "n"] == 1
    assert s.at[("teacher-large", TASK), "runs"] == ["two"]
    assert s.at[("#3 PKD", TASK), "sources"] == [f"three:metrics/eval/{TASK}/pkd_skip-2.json"]
    assert summary_of(exps, pkd="pkd_last").at[("#1 PKD", TASK), "mean"] == 0.5


def test_a_projected_pkd_student_gets_its_own_row_and_no_paper_number():
    two = experiment("two", "L", "B", {"teacher": 0.85, "kd-2": 0.71, "pkd_skip-2": 0.73})
    two["params"]["strategies"] = {"pkd_skip": {"projection": True}}
    three = experiment("three", "L", None, {"teacher": 0.85, "kd-2": 0.60, "pkd_skip-2": 0.61})
    s = summary_of([two, three])
    assert s.at[("#2 PKD + proj", TASK), "mean"] == 0.73 and s.at[("#3 PKD", TASK), "mean"] == 0.61
    assert ("#2 PKD", TASK) not in s.index and authors("#2 PKD + proj") == {}
    assert ROW_LABELS["#2 PKD + proj"].endswith("PKD + proj")


def test_seeds_give_mean_and_sample_std():
    exps = [experiment(f"s{seed}", "B", None, {"teacher": 0.8, "kd-2": acc}, seed=seed)
            for seed, acc in ((1, 0.70), (2, 0.74), (3, 0.72))]
    s = summary_of(exps)
    kd = s.loc[("#1 KD", TASK)]
    assert kd["n"] == 3 and kd["seeds"] == [1, 2, 3]
    assert kd["mean"] == pytest.approx(0.72) and kd["std"] == pytest.approx(0.02)
    table = render(s.reset_index(), SETUP)
    assert "72.0 ± 2.0 (n=3)" in table and "runs s1, s2, s3" in table


def test_seed_inside_an_eval_record_wins_over_the_params_seed():
    exp = experiment("seeded", "B", None, {"teacher": 0.8, "kd-2": 0.7})
    extra = record(TASK, "kd-2-s43", 0.76, 2, strategy="kd", seed=43)
    exp["metrics"][f"metrics/eval/{TASK}/kd-2-s43.json"] = extra
    exp["metrics"][f"metrics/eval/{TASK}/kd-2.json"]["seed"] = 42
    kd = summary_of([exp]).loc[("#1 KD", TASK)]
    assert kd["seeds"] == [42, 43] and kd["mean"] == pytest.approx(0.73)


def test_the_same_result_in_the_workspace_is_not_counted_twice_but_a_clash_is_refused():
    one = experiment("one", "B", None, {"teacher": 0.8, "kd-2": 0.7})
    ws = experiment("workspace", "B", None, {"teacher": 0.8, "kd-2": 0.7})
    kd = summary_of([ws, one]).loc[("#1 KD", TASK)]
    assert kd["n"] == 1 and kd["runs"] == ["one"]
    other = experiment("again", "B", None, {"teacher": 0.8, "kd-2": 0.65})
    with pytest.raises(StudyError, match=r"#1 base teacher, base-init, KD, builtin_pair, seed 42: runs one, again disagree"):
        study_values([one, other], SETUP)


def test_several_depths_need_a_choice():
    exp = experiment("one", "B", None, {"teacher": 0.8, "kd-2": 0.7, "kd-3": 0.75})
    with pytest.raises(StudyError, match=r"several depths \[2, 3\]: choose one with --depth"):
        study_values([exp], SETUP)
    assert summary_of([exp], depth=3).at[("#1 KD", TASK), "mean"] == 0.75


def test_mrpc_cells_are_accuracy_not_the_main_metric():
    exp = experiment("one", "B", None, {"teacher": 0.8, "kd-2": 0.7})
    for path, rec in list(exp["metrics"].items()):
        exp["metrics"].pop(path)
        rec.update(task="mrpc", main_metric="f1")
        rec["splits"] = {"dev": {"f1": 0.9, "accuracy": rec["splits"]["dev"]["accuracy"], "n": 32}}
        exp["metrics"][path.replace(TASK, "mrpc")] = rec
    s = summary_of([exp])
    assert s.at[("#1 KD", "mrpc"), "mean"] == 0.7 and s.at[("#1 KD", "mrpc"), "metric"] == "accuracy"
    assert s.at[("#1 KD", "mrpc"), "paper"] == authors("#1 KD")["mrpc"]


def test_no_matching_experiment_says_how_to_run_them():
    with pytest.raises(StudyError, match="base 'B', large 'L'"):
        study_values([experiment("x", "X", None, {"kd-2": 0.5})], SETUP)


def test_paper_columns_show_the_authors_numbers():
    exps = [experiment("one", "B", None, {"teacher": 0.9, "kd-2": 0.88})]
    for exp in exps:
        for path in list(exp["metrics"]):
            rec = exp["metrics"].pop(path)
            rec["task"] = "sst2"
            exp["metrics"][path.replace(TASK, "sst2")] = rec
    table = render(summarise(study_values(exps, SETUP)), SETUP)
    header, _, teacher, kd = table.splitlines()[:4]
    assert "sst2 (paper)" in header
    assert "90.0" in teacher and f"{authors('teacher-base')['sst2']:.1f}" in teacher
    assert "88.0" in kd and "90.8" in kd


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    show = tmp_path / "show.json"
    show.write_text("[]")
    proc = subprocess.run([sys.executable, "-m", "pkd.cli.teacher_study", "--exp-show-json", str(show),
                           "--output", str(tmp_path / "t.md")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_preset_sets_up_set_up_1_with_the_papers_protocol(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset("paper-larger-teacher", params_file, ROOT / "presets")
    params = parse_params(yaml.safe_load(params_file.read_text()))
    assert params.preset == "paper-larger-teacher" and params.pooling == "cls"
    assert params.teacher.checkpoint == "bert-base-uncased" and params.student.init_checkpoint is None
    assert params.data.source == "hub" and params.data.tasks == ["sst2", "mrpc", "qqp", "mnli", "qnli", "rte"]
    assert params.student.depths == [6] and params.student.strategies == ["kd", "pkd_skip"]
    assert params.teacher.epochs == params.student.epochs == 4 and params.data.max_seq_length == 128
    text = (ROOT / "presets/paper-larger-teacher.yaml").read_text()
    assert "bert-large-uncased" in text and "GPU" in text and "ESTIMATE" in text


# --- offline proof: the three set-ups through `dvc exp run`, on tiny BERTs ---

def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def workspace_results(root):
    """Every eval record and the students' widths that an experiment left in the workspace."""
    evals = {p.stem: json.loads(p.read_text()) for p in (root / "metrics/eval" / TASK).glob("*.json")}
    widths = {p.name: json.loads((p / "config.json").read_text())["hidden_size"]
              for p in (root / "models/students" / TASK).iterdir() if p.is_dir()}
    teacher_width = json.loads((root / "models/teacher" / TASK / "config.json").read_text())["hidden_size"]
    return evals, widths, teacher_width


@pytest.mark.slow
def test_three_setups_run_end_to_end_and_the_table_equals_their_metrics(tmp_path):
    base = save_tiny_bert(tmp_path / "tiny-base", layers=4, hidden=32)
    large = save_tiny_bert(tmp_path / "tiny-large", layers=8, hidden=48)
    repo = tmp_path / "repo"
    repo.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["pooling"] = "cls"
    params["data"].update(tasks=[TASK], builtin_train_size=48, builtin_dev_size=32, max_seq_length=32)
    params["teacher"].update(checkpoint=str(base), epochs=1, batch_size=16, train_eval_samples=8)
    params["student"].update(depths=[2], strategies=["kd", "pkd_skip"], epochs=1, batch_size=16, train_eval_samples=8,
                             **split_strategies(["kd", "pkd_skip"]))
    env = make_repo(repo, params)
    env.update(PKD_TRACKING="off", OMP_NUM_THREADS="1")
    target = f"evaluate@{TASK}"  # timing and report are not part of the study
    slow = 2400  # seconds per experiment: a loaded 2-core machine can be many times slower than an idle one

    def exp(name, teacher, init, strategies, projection=False):
        cmd = ["dvc", "exp", "run", "-n", name, "-S", f"teacher.checkpoint={teacher}",
               "-S", f"strategies.pkd_skip.projection={str(projection).lower()}",
               "-S", f"student.init_checkpoint={init or 'null'}", "-S", f"student.strategies=[{','.join(strategies)}]",
               # dvc.yaml's per-stage lists follow student.strategies (pkd.pipeline.params.split_strategies)
               *(arg for key, value in split_strategies(strategies).items()
                 for arg in ("-S", f"student.{key}=[{','.join(value)}]")), target]
        return cmd

    runs = {}
    log = run_cmd(exp("base-base", base, None, ["kd", "pkd_skip"]), repo, env, timeout=slow)
    runs["#1"] = (*workspace_results(repo), log)
    # PKD between a 48- and a 32-wide model is refused before any work, naming both sizes.
    proc = subprocess.run(exp("large-base-pkd", large, base, ["kd", "pkd_skip"]), cwd=repo, env=env,
                          capture_output=True, text=True, timeout=slow, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert re.search(r"error: student.strategies: 'pkd_skip' matches hidden states, but teacher.checkpoint "
                     r"'.*' has hidden size 48 and student.init_checkpoint '.*' has 32", out), out[-2000:]
    # With a learned projection (an extension), #2 runs PKD too: "PKD + proj" rows.
    log = run_cmd(exp("large-base", large, base, ["kd", "pkd_skip"], projection=True), repo, env, timeout=slow)
    runs["#2"] = (*workspace_results(repo), log)
    log = run_cmd(exp("large-large", large, None, ["kd", "pkd_skip"]), repo, env, timeout=slow)
    runs["#3"] = (*workspace_results(repo), log)

    # Who was cut from what: widths of teachers and students.
    assert runs["#1"][1:3] == ({"kd-2-s42": 32, "pkd_skip-2-s42": 32}, 32)
    assert runs["#2"][1:3] == ({"kd-2-s42": 32, "pkd_skip-2-s42": 32}, 48)
    assert runs["#3"][1:3] == ({"kd-2-s42": 48, "pkd_skip-2-s42": 48}, 48)
    # #3 reuses #2's teacher and teacher cache (DVC run-cache): the same teacher, strategies and depths.
    assert ran_stages(runs["#3"][3]) == {f"distill@{TASK}-kd-2-42", f"distill@{TASK}-pkd_skip-2-42", target}

    out = run_cmd([sys.executable, "-m", "pkd.cli.teacher_study", "--base", str(base), "--large", str(large)], repo, env)
    summary = {r["row"]: r for r in json.loads((repo / "reports/teacher_study.json").read_text())}
    table = (repo / "reports/teacher_study.md").read_text()
    assert table in out

    def acc(which, model):
        return runs[which][0][model]["splits"]["dev"]["accuracy"]

    expected = {
        "teacher-base": ("#1", "teacher", "base-base"), "teacher-large": ("#2", "teacher", "large-base"),
        "#1 KD": ("#1", "kd-2-s42", "base-base"), "#1 PKD": ("#1", "pkd_skip-2-s42", "base-base"),
        "#2 KD": ("#2", "kd-2-s42", "large-base"), "#2 PKD + proj": ("#2", "pkd_skip-2-s42", "large-base"),
        "#3 KD": ("#3", "kd-2-s42", "large-large"),
        "#3 PKD": ("#3", "pkd_skip-2-s42", "large-large"),
    }
    assert set(summary) == set(expected)
    assert acc("#3", "teacher") == acc("#2", "teacher")
    cells = {parts[0]: parts[1:] for parts in
             ([c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines() if line.startswith("|"))}
    depths = {"teacher-base": 4, "teacher-large": 8}
    for row, (which, model, run) in expected.items():
        assert summary[row]["mean"] == acc(which, model), row
        assert summary[row]["n"] == 1 and summary[row]["std"] is None
        # #2's teacher is #3's (run-cache): one value, credited to whichever experiment is listed first.
        runs_ok = ("large-base", "large-large") if row == "teacher-large" else (run,)
        assert summary[row]["runs"][0] in runs_ok, row
        assert summary[row]["sources"][0] == f"{summary[row]['runs'][0]}:metrics/eval/{TASK}/{model}.json"
        assert cells[f"{ROW_LABELS[row]} ({depths.get(row, 2)}L)"] == [f"{100 * acc(which, model):.1f}"], row
    assert "base-base" in table and "large-base" in table and "large-large" in table


WRITE_EVALS = '''
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
teacher = p["teacher"]["checkpoint"]
init = p["student"]["init_checkpoint"] or teacher
base = {"B": 0.8, "L": 0.85}[teacher] + (p["seed"] - 42) / 100
os.makedirs("metrics/eval/mrpc", exist_ok=True)
def write(model, role, strategy, depth, acc):
    rec = {"task": "mrpc", "model": model, "role": role, "strategy": strategy, "depth": depth, "teacher_depth": 8,
           "main_metric": "f1", "metric_names": ["f1", "accuracy"], "splits": {"dev": {"f1": 0.9, "accuracy": acc, "n": 10}}}
    json.dump(rec, open(f"metrics/eval/mrpc/{model}.json", "w"))
write("teacher", "teacher", None, 8, base)
for s in p["student"]["strategies"]:
    write(f"{s}-2", "student", s, 2, round(base - 0.1 - 0.05 * (init == "L") - 0.01 * (s == "kd"), 4))
'''


@pytest.mark.slow
def test_table_from_real_dvc_experiments_with_seeds(tmp_path):
    """The `dvc exp show --json` path, with a stand-in stage that writes eval records (no training)."""
    env = {**__import__("os").environ, "DVC_NO_ANALYTICS": "1"}
    run_cmd(["git", "init", "-q"], tmp_path)
    run_cmd(["dvc", "init", "-q"], tmp_path, env)
    (tmp_path / "write.py").write_text(WRITE_EVALS)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"ev": {
        "cmd": f"{sys.executable} write.py", "deps": ["write.py"],
        "params": ["seed", "teacher.checkpoint", "student.init_checkpoint", "student.strategies"],
        "metrics": ["metrics/eval/mrpc"]}}}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 42, "teacher": {"checkpoint": "B"}, "student": {
        "init": "pretrained", "init_checkpoint": None, "strategies": ["kd", "pkd_skip"]}}))
    run_cmd(["git", "add", "-A"], tmp_path)
    run_cmd(["git", "commit", "-qm", "base"], tmp_path)
    for name, teacher, init, strategies, seed in [("one", "B", "null", "[kd,pkd_skip]", 42),
                                                  ("one-s43", "B", "null", "[kd,pkd_skip]", 43),
                                                  ("two", "L", "B", "[kd]", 42),
                                                  ("three", "L", "null", "[kd,pkd_skip]", 42)]:
        run_cmd(["dvc", "exp", "run", "-n", name, "-S", f"teacher.checkpoint={teacher}", "-S", f"seed={seed}",
                 "-S", f"student.init_checkpoint={init}", "-S", f"student.strategies={strategies}"], tmp_path, env)
    out = run_cmd([sys.executable, "-m", "pkd.cli.teacher_study", "--base", "B", "--large", "L"], tmp_path,
                  {**env, "PYTHONPATH": str(ROOT)})
    rows = {r["row"]: r for r in json.loads((tmp_path / "reports/teacher_study.json").read_text())}
    assert rows["#1 KD"]["mean"] == pytest.approx(0.695) and rows["#1 KD"]["n"] == 2
    assert rows["#1 KD"]["std"] == pytest.approx(0.00707107, abs=1e-6) and rows["#1 KD"]["seeds"] == [42, 43]
    assert sorted(rows["#1 KD"]["runs"]) == ["one", "one-s43"]
    assert rows["#2 KD"]["mean"] == pytest.approx(0.74) and rows["#3 KD"]["mean"] == pytest.approx(0.69)
    assert rows["#3 PKD"]["mean"] == pytest.approx(0.70) and rows["teacher-large"]["n"] == 1
    assert rows["#2 KD"]["metric"] == "accuracy" and rows["#2 KD"]["paper"] == 84.1
    assert re.search(r"\| #1 base teacher, base-init, KD \(2L\)\s+\| 69\.5 ± 0\.7 \(n=2\)\s+\| 82\.8\s+\|", out), out


def test_the_paper_columns_follow_the_pkd_strategy_chosen():
    """`--pkd pkd_last` compares with the authors' PKD-Last, not their PKD-Skip; where they
    report no such row (#3), the paper cell is empty, not another method's number."""
    from pkd.report.paper import AUTHORS_DEV

    assert authors("#1 PKD") == AUTHORS_DEV[("pkd_skip", 6)]
    assert authors("#1 PKD", "pkd_last") == AUTHORS_DEV[("pkd_last", 6)]
    assert authors("#3 PKD", "pkd_last") == {}
    assert authors("teacher-base") == AUTHORS_DEV[(None, 12)]
    exp = experiment("one", "B", None, {"teacher": 0.9, "pkd_last-2": 0.88}, strategies=("pkd_last",))
    for path in list(exp["metrics"]):
        rec = exp["metrics"].pop(path)
        rec["task"] = "sst2"
        exp["metrics"][path.replace(TASK, "sst2")] = rec
    table = render(summarise(study_values([exp], SETUP, pkd="pkd_last"), pkd="pkd_last"), SETUP, pkd="pkd_last")
    pkd_row = next(line for line in table.splitlines() if line.startswith("| #1"))
    assert "88.0" in pkd_row and f"{AUTHORS_DEV[('pkd_last', 6)]['sst2']:.1f}" in pkd_row
