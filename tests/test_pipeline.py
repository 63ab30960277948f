"""End-to-end `dvc repro` of a tiny configuration in a temporary copy of the repository."""
import filecmp
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, make_repo, save_tiny_bert
from conftest import run_cmd as run

from pkd.io import read_json

pytestmark = pytest.mark.slow
TASK = "builtin_pair"


def tiny_params(checkpoint: Path) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=[TASK], builtin_train_size=64, builtin_dev_size=32, max_seq_length=48)
    params["teacher"].update(checkpoint=str(checkpoint), epochs=1, batch_size=16, train_eval_samples=16)
    params["student"].update(depths=[2], epochs=1, batch_size=16, train_eval_samples=16)
    params["timing"].update(warmup=0, repeats=1, max_examples=16)
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    checkpoint = save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    env = make_repo(root, tiny_params(checkpoint))
    log = run(["dvc", "repro"], root, env)
    return root, env, log


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def test_repro_produces_every_output(repo):
    root, _, log = repo
    strategies = ["ft", "kd", "pkd_skip", "pkd_last"]
    assert ran_stages(log) == {
        f"prepare@{TASK}", f"teacher@{TASK}", f"teacher_cache@{TASK}", f"evaluate@{TASK}", "timing", "report",
        f"finetune@{TASK}-ft-2-42", *(f"distill@{TASK}-{s}-2-42" for s in strategies[1:]),
    }  # export.enabled: false: no export@ or register@ stage
    for name in ["report.md", "report.html", "table1_main.csv", "table2_skip_vs_last.csv", "table3_inference.csv",
                 "fig_metric_vs_depth.png", "fig_train_vs_dev.png", "fig_accuracy_vs_speedup.png"]:
        assert (root / "reports" / name).stat().st_size > 0
    assert (root / "cache/teacher" / TASK / "manifest.json").exists()
    assert (root / "metrics/eval" / TASK / "pkd_skip-2-s42.json").exists()
    assert not list((root / "runs").glob("checkpoints/*")), "checkpoints are removed after success"


def test_repro_changes_no_tracked_file_but_dvc_lock(repo):
    """DVC adds a .gitignore entry for each output it finds not ignored yet: the tracked
    reports/.gitignore lists every report output, so a run leaves it as it is."""
    root, _, _ = repo
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], root).splitlines()
    assert [line for line in changed if not line.endswith(" dvc.lock")] == []


def test_unchanged_tree_reproduces_nothing(repo):
    root, env, _ = repo
    log = run(["dvc", "repro"], root, env)
    assert ran_stages(log) == set()
    assert "Data and pipelines are up to date" in log or "didn't change" in log
    metrics = run(["dvc", "metrics", "show", "--json"], root, env)
    assert "pkd_last-2-s42.json" in metrics and "timing.json" in metrics


def test_mlflow_has_a_run_per_stage_with_tags(repo):
    from mlflow.tracking import MlflowClient

    root, _, _ = repo
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("pkd")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    stages = [r.data.tags.get("pkd.stage") for r in runs]
    for stage in ["prepare", "teacher", "teacher_cache", "distill", "evaluate", "timing", "report"]:
        assert stage in stages
    distill = [r for r in runs if r.data.tags.get("pkd.stage") == "distill"]
    assert {r.data.tags["pkd.strategy"] for r in distill} == {"ft", "kd", "pkd_skip", "pkd_last"}
    assert {r.data.tags["pkd.depth"] for r in distill} == {"2"}
    assert {r.data.tags["pkd.seed"] for r in distill} == {"42"}
    groups = {r.data.tags.get("pkd.run_group") for r in runs}
    assert len(groups) == 1 and None not in groups  # one repro, one group


def tracked_outputs(root: Path) -> list[Path]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return sorted({Path(out["path"]) for stage in lock["stages"].values() for out in stage.get("outs", [])})


def same_tree(a: Path, b: Path) -> bool:
    if a.is_file():
        return filecmp.cmp(a, b, shallow=False)
    cmp = filecmp.dircmp(a, b)
    files = [p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != ".gitignore"]
    return not cmp.left_only and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def test_remote_push_then_fresh_clone_pull_is_byte_identical_and_up_to_date(repo, tmp_path):
    root, env, _ = repo
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "results"], root)
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], root)
    run(["git", "commit", "-qam", "remote"], root)
    run(["dvc", "push"], root, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    run(["dvc", "pull"], clone, env)
    status = run(["dvc", "status"], clone, env)
    assert "up to date" in status
    assert ran_stages(run(["dvc", "repro"], clone, env)) == set()
    outputs = tracked_outputs(root)
    assert len(outputs) >= 8
    for out in outputs:
        assert same_tree(root / out, clone / out), out


def test_parallel_queued_sweep_lands_in_mlflow_and_best_on_dev_table(repo, server):
    from mlflow.tracking import MlflowClient

    from pkd.cli.sweep_table import best_on_dev
    from pkd.pipeline.experiments import collect_experiments

    root, env, _ = repo
    queue_env = {**env, "MLFLOW_TRACKING_URI": server, "OMP_NUM_THREADS": "1"}
    run(["dvc", "exp", "run", "--queue", "-S", "strategies.kd.alpha=0.2,0.5"], root, queue_env)
    run(["dvc", "queue", "start", "-j", "2"], root, queue_env)
    deadline = time.monotonic() + 600
    while re.search(r"\b(Queued|Running)\b", run(["dvc", "queue", "status"], root, queue_env)):
        assert time.monotonic() < deadline, "queued experiments did not finish"
        time.sleep(3)
    status = run(["dvc", "queue", "status"], root, queue_env)
    assert status.count("Success") >= 2, status
    table = best_on_dev(collect_experiments(json.loads(run(["dvc", "exp", "show", "--json"], root, queue_env))))
    kd = table[table.strategy == "kd"].iloc[0]
    assert kd["alpha"] in (0.2, 0.5, 0.7) and kd["candidates"] >= 3
    client = MlflowClient(tracking_uri=server)
    runs = client.search_runs([client.get_experiment_by_name("pkd").experiment_id], max_results=500)
    kd_alphas = {r.data.params.get("strategy.alpha") for r in runs
                 if r.data.tags.get("pkd.stage") == "distill" and r.data.tags.get("pkd.strategy") == "kd"}
    assert {"0.2", "0.5"} <= kd_alphas  # both parallel workers' runs landed


def test_ddp_cache_equals_single_process_and_distill_runs_under_torchrun(repo, tmp_path):
    import torch
    from safetensors.torch import load_file

    root, env, _ = repo
    single = tmp_path / "single"
    shutil.copytree(root / "cache/teacher" / TASK, single)
    torchrun = [str(Path(shutil.which("torchrun", path=env["PATH"]))), "--standalone", "--nproc_per_node", "2"]
    ddp_env = {**env, "OMP_NUM_THREADS": "1"}
    try:
        run([*torchrun, "stages/teacher_cache.py", "--task", TASK], root, ddp_env)
        for split in ("train", "dev"):
            a = load_file(str(single / f"{split}.safetensors"))
            b = load_file(str(root / "cache/teacher" / TASK / f"{split}.safetensors"))
            assert a["idx"].tolist() == b["idx"].tolist() == sorted(a["idx"].tolist())
            # Batches differ between 1 and 2 processes (padding), so float32 values differ in the
            # last bits; stored as float16 (the default), that can flip the last stored bit.
            torch.testing.assert_close(a["logits"], b["logits"], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a["states"].float(), b["states"].float(), atol=1e-5,
                                       rtol=2e-3 if a["states"].dtype == torch.float16 else 1e-5)
        student = root / "models/students" / TASK / "pkd_skip-2-s42"
        shutil.rmtree(student)
        log = run([*torchrun, "stages/distill.py", "--task", TASK, "--strategy", "pkd_skip", "--depth", "2", "--seed", "42"], root, ddp_env)
        assert (student / "model.safetensors").exists(), log[-2000:]
        assert log.count("'train_runtime'") == 1, log[-2000:]  # one DDP run logs once, not one run per process
    finally:
        run(["dvc", "checkout", "--force"], root, env)


def test_changing_a_cache_only_key_reruns_only_the_cache_and_its_readers(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["teacher"]["cache_dtype"] = "bfloat16"  # not the default
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], root, env)
    # Not the teacher (it does not read cache_*), not FT (it does not read the cache).
    assert ran_stages(log) == {
        f"teacher_cache@{TASK}", *(f"distill@{TASK}-{s}-2-42" for s in ["kd", "pkd_skip", "pkd_last"]),
        f"evaluate@{TASK}", "report",
    }


def test_changing_one_strategy_reruns_only_its_students(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["strategies"]["kd"]["alpha"] = 0.3  # not a value the queued sweep ran (DVC run-cache)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], root, env)
    assert ran_stages(log) == {f"distill@{TASK}-kd-2-42", f"evaluate@{TASK}", "report"}


def test_adding_a_seed_trains_only_the_new_students(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["student"]["seeds"] = [42, 7]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], root, env)
    strategies = ["ft", "kd", "pkd_skip", "pkd_last"]
    assert ran_stages(log) == {f"finetune@{TASK}-ft-2-7", *(f"distill@{TASK}-{s}-2-7" for s in strategies[1:]),
                               f"evaluate@{TASK}", "report"}
    record = json.loads((root / "metrics/eval" / TASK / "kd-2-s7.json").read_text())
    assert record["seed"] == 7 and record["strategy"] == "kd"
    assert "| KD | 2 | 2 |" in (root / "reports/report.md").read_text()  # two seeds in the cell
    paired = (root / "reports/table1_paired_differences.csv").read_text()
    assert "PKD-Skip − KD" in paired


def test_parallel_repro_runs_what_changed_and_leaves_dvc_up_to_date(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["strategies"]["pkd_last"]["temperature"] = 3.0  # read by its students only, not by the cache
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["pkd", "repro", "--jobs", "2"], root, env)
    ran = set(re.findall(r"done +(\S+)", log))
    assert ran == {*(f"distill@{TASK}-pkd_last-2-{seed}" for seed in (42, 7)), f"evaluate@{TASK}", "report"}, log
    assert "timing" not in log  # unchanged, and a timing stage would have run alone
    assert "up to date" in run(["dvc", "status"], root, env)
    assert "pkd_last" in (root / "reports/report.md").read_text()


def test_bad_params_stop_repro_with_the_key_named(repo):
    root, env, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["strategies"]["pkd_skip"]["alpha"] = 1.5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "strategies.pkd_skip.alpha" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = subprocess.run(["pkd", "repro", "-j", "2"], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "strategies.pkd_skip.alpha" in proc.stderr and "failed" in proc.stderr


# README, "Add your own strategy": the registry entry, as the README gives it.
RECIPE_ENTRY = '''
register(Strategy("pkd_first", "PKD-First", soft_labels=True,
                  layers=lambda n, m: list(range(1, m))))   # student layer j <- teacher layer j
'''


def test_readme_strategy_recipe_runs_and_its_beta_sweep_reruns_only_its_students(tmp_path):
    """The recipe through `dvc repro`: a strategy added to the registry and params.yaml trains and
    reaches the report; changing its beta re-runs its students, never the teacher cache."""
    params = tiny_params(save_tiny_bert(tmp_path / "tiny-bert"))
    params["student"].update(strategies=["kd", "pkd_first"], finetune_strategies=[],
                             distill_strategies=["kd", "pkd_first"])
    params["strategies"] = {"kd": params["strategies"]["kd"],
                            "pkd_first": {"alpha": 0.7, "beta": 100.0, "temperature": 10.0, "learning_rate": None}}
    root = tmp_path / "repo"
    root.mkdir()
    env = make_repo(root, params)
    with (root / "pkd/method/strategies.py").open("a") as fh:
        fh.write(RECIPE_ENTRY)
    env = {**env, "PYTHONPATH": str(root)}  # the stages import this copy of pkd, with the entry
    log = run(["dvc", "repro"], root, env)
    assert {f"distill@{TASK}-pkd_first-2-42", f"teacher_cache@{TASK}", "report"} <= ran_stages(log)
    assert "PKD-First" in (root / "reports/report.md").read_text()
    assert read_json(root / "cache/teacher" / TASK / "manifest.json")["stored_layers"] == [1]

    params["strategies"]["pkd_first"]["beta"] = 500.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], root, env)
    assert ran_stages(log) == {f"distill@{TASK}-pkd_first-2-42", f"evaluate@{TASK}", "report"}
