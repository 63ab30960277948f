"""pkd.pipeline.tracking against a local SQLite store, a real `mlflow server`, and broken stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from mlflow.tracking import MlflowClient

from pkd.pipeline import tracking
from pkd.pipeline.tracking import TrackingError, stage_run

REPO = Path(__file__).resolve().parents[2]
ENV = ["MLFLOW_TRACKING_URI", "PKD_MLFLOW_EXPERIMENT", "PKD_RUN_GROUP", "PKD_TRACKING",
       "PKD_TRACKING_STRICT", "DVC_STAGE", "DVC_ROOT", "DVC_EXP_NAME"]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A tmp dir that looks like the repo root (dvc.yaml + params.yaml), as the cwd."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("task: t1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def log_two_stages(repo: Path) -> None:
    (repo / "metrics.json").write_text('{"acc": 0.8}')
    (repo / "plots").mkdir()
    (repo / "plots" / "curve.csv").write_text("epoch,loss\n1,0.5\n")
    params = {"lr": 1e-3, "model": {"layers": 2, "name": "x" * 7000}}
    with stage_run("teacher", params=params, tags={"task": "t1"}) as run:
        run.log_history([{"epoch": 1, "loss": 0.5, "acc": 0.6},
                         {"epoch": 2, "loss": 0.3, "acc": 0.8}])
        run.log_metrics({"dev": {"acc": 0.8}, "task": "t1"})
        run.log_artifact(repo / "metrics.json")
    tags = {"task": "t1", "strategy": "kd", "depth": 3, "dvc_stage": "distill@t1-kd-3"}
    with stage_run("distill", params={"alpha": 0.5}, tags=tags) as run:
        run.log_metrics({"acc": 0.7}, step=3)
        run.log_artifact(repo / "plots")


def check_two_stages(client: MlflowClient, experiment: str) -> None:
    exp = client.get_experiment_by_name(experiment)
    # MLflow 3's UI opens an untagged experiment on its GenAI page; this kind opens the runs table.
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parents = [r for r in runs.values() if r.data.tags.get("pkd.role") == "group"]
    assert len(parents) == 1 and len(runs) == 3, sorted(runs)
    parent = parents[0]
    group = parent.data.tags["pkd.run_group"]
    assert parent.info.run_name == f"repro-{group}" and parent.info.status == "FINISHED"

    teacher, distill = runs["teacher@t1"], runs["distill@t1-kd-3"]
    for run in (teacher, distill):
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["pkd.run_group"] == group
        assert run.data.tags["pkd.git_commit"] == "unknown"  # tmp dir is no git repo
    assert teacher.data.tags["pkd.stage"] == "teacher" and teacher.data.tags["pkd.task"] == "t1"
    assert {k: v for k, v in distill.data.tags.items() if k.startswith("pkd.") and not k.startswith("pkd.env.")} == {
        "pkd.stage": "distill", "pkd.dvc_stage": "distill@t1-kd-3", "pkd.task": "t1",
        "pkd.strategy": "kd", "pkd.depth": "3", "pkd.git_commit": "unknown",
        "pkd.run_group": group}
    # The environment: the versions this process runs with; no requirements.lock in this repo.
    import torch
    import transformers

    env = {k.removeprefix("pkd.env."): v for k, v in distill.data.tags.items() if k.startswith("pkd.env.")}
    assert set(env) == {"python", "torch", "transformers", "datasets", "dvc", "mlflow", "onnxruntime",
                        "lock", "locked", "id"}
    assert env["torch"] == torch.__version__ and env["transformers"] == transformers.__version__
    assert (env["lock"], env["locked"]) == ("none", "no lock")
    assert teacher.data.tags["pkd.env.id"] == env["id"]

    assert teacher.data.params["lr"] == "0.001" and teacher.data.params["model.layers"] == "2"
    assert len(teacher.data.params["model.name"]) == tracking.MAX_PARAM_VALUE_LENGTH
    assert distill.data.params == {"alpha": "0.5"}

    def history(run_id, key):
        return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]

    tid, did = teacher.info.run_id, distill.info.run_id
    assert history(tid, "loss") == [(1, 0.5), (2, 0.3)]
    assert history(tid, "acc") == [(1, 0.6), (2, 0.8)]
    assert teacher.data.metrics["dev.acc"] == 0.8 and "task" not in teacher.data.metrics
    assert history(did, "acc") == [(3, 0.7)]

    assert [a.path for a in client.list_artifacts(tid)] == ["metrics.json"]
    assert [a.path for a in client.list_artifacts(did, "plots")] == ["plots/curve.csv"]


def test_tracking_uri_defaults_to_repo_root_sqlite(repo, monkeypatch):
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    assert tracking.tracking_uri() == f"sqlite:///{repo}/mlflow.db"
    monkeypatch.setenv("DVC_ROOT", "/elsewhere")  # `dvc queue` points this at the main repo
    assert tracking.tracking_uri() == "sqlite:////elsewhere/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:1")
    assert tracking.tracking_uri() == "http://h:1"


def test_run_group_id_follows_commit_and_params(repo, monkeypatch):
    first = tracking.run_group_id(repo, "abc")
    assert first == tracking.run_group_id(repo, "abc") != tracking.run_group_id(repo, "def")
    (repo / "params.yaml").write_text("task: t2\n")
    assert tracking.run_group_id(repo, "abc") != first
    monkeypatch.setenv("PKD_RUN_GROUP", "mine")
    assert tracking.run_group_id(repo, "abc") == "mine"


def test_sqlite_default_store(repo):
    log_two_stages(repo)
    with pytest.raises(ValueError):  # the stage's own error passes through, run is FAILED
        with stage_run("evaluate", params={}, tags={"task": "t1"}):
            raise ValueError("boom")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    failed = client.search_runs([client.get_experiment_by_name("pkd").experiment_id],
                                "tags.`pkd.stage` = 'evaluate'")
    assert [r.info.status for r in failed] == ["FAILED"]
    client.delete_run(failed[0].info.run_id)  # keep the two-stage check exact
    check_two_stages(client, "pkd")
    assert (repo / "mlartifacts").is_dir()  # artifacts next to mlflow.db, not under the cwd


def test_tracking_server(repo, server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("PKD_MLFLOW_EXPERIMENT", "pkd-server")
    log_two_stages(repo)
    check_two_stages(MlflowClient(tracking_uri=server), "pkd-server")


def test_dvc_environment_names_stage_and_group(repo, server, monkeypatch):
    for var, value in {"MLFLOW_TRACKING_URI": server, "PKD_MLFLOW_EXPERIMENT": "pkd-dvc-env",
                       "DVC_STAGE": "distill@t1-pkd_skip-6", "DVC_EXP_NAME": "exp-1",
                       "PKD_RUN_GROUP": "g1"}.items():
        monkeypatch.setenv(var, value)
    tags = {"task": "t1", "strategy": "pkd_skip", "depth": 6, "dvc_stage": "a guess"}
    with stage_run("distill", params={}, tags=tags) as run:
        pass
    run_tags = MlflowClient(tracking_uri=server).get_run(run.run_id).data.tags
    parent = MlflowClient(tracking_uri=server).get_run(run.parent_id)
    assert run_tags["pkd.dvc_stage"] == "distill@t1-pkd_skip-6"  # DVC's name wins
    assert run_tags["pkd.dvc_exp"] == "exp-1" and run_tags["pkd.run_group"] == "g1"
    assert parent.info.run_name == "repro-g1" and parent.data.tags["pkd.role"] == "group"


WRITER = """
import sys
from pkd.pipeline.tracking import stage_run
for i in range(5):
    tags = {"task": "t1", "strategy": "w" + sys.argv[1], "depth": i}
    with stage_run("distill", params={"worker": sys.argv[1], "i": i}, tags=tags) as run:
        run.log_metrics({"acc": i / 10}, step=i)
"""


def test_concurrent_writers_against_server(repo, server):
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=server,
               PKD_MLFLOW_EXPERIMENT="pkd-concurrent", PKD_TRACKING_STRICT="1")  # lost = error
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w)], cwd=repo, env=env,
                              stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors

    client = MlflowClient(tracking_uri=server)
    exp_id = client.get_experiment_by_name("pkd-concurrent").experiment_id
    stages = client.search_runs([exp_id], "tags.`pkd.stage` = 'distill'")
    parents = client.search_runs([exp_id], "tags.`pkd.role` = 'group'")
    assert len(stages) == 10 and all(r.data.metrics.keys() == {"acc"} for r in stages)
    # Both writers may have raced to create the group's parent; the group tag unites them.
    assert 1 <= len(parents) <= 2
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} <= {p.info.run_id for p in parents}
    assert len({r.data.tags["pkd.run_group"] for r in stages + parents}) == 1


SQLITE_STARTER = """
import sys, time
import mlflow.tracking  # imported before the start line, so that the stages open the store together
from pkd.pipeline.tracking import stage_run
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
with stage_run("teacher", params={"worker": sys.argv[1]}, tags={"task": "t" + sys.argv[1]}) as run:
    run.log_metrics({"acc": 0.5})
"""


def test_stages_opening_a_new_sqlite_store_at_once_are_all_tracked(repo):
    """`pkd repro --jobs 2` on a fresh clone starts two stages on a store that does not exist
    yet: each opens it, and MLflow creates its tables in whichever process comes first."""
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(PYTHONPATH=str(REPO), PKD_TRACKING_STRICT="1")  # a lost run = an error
    start = time.time() + 12  # after every process has imported mlflow
    procs = [subprocess.Popen([sys.executable, "-c", SQLITE_STARTER, str(w), str(start)], cwd=repo, env=env,
                              stderr=subprocess.PIPE, text=True) for w in range(3)]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("pkd").experiment_id
    assert len(client.search_runs([exp_id], "tags.`pkd.stage` = 'teacher'")) == 3


def test_param_names_mlflow_refuses_are_logged_under_a_name_it_takes(repo, monkeypatch):
    """The report stage's params are its table's row names, e.g. "seed (teacher, data)": MLflow
    takes only alphanumerics, _ - . : / and spaces in a name, and refused the whole run."""
    monkeypatch.setenv("PKD_TRACKING_STRICT", "1")
    with stage_run("report", params={"seed (teacher, data)": 42, "student seeds": "1, 2"}, tags={}) as run:
        pass
    params = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db").get_run(run.run_id).data.params
    assert params == {"seed teacher data": "42", "student seeds": "1, 2"}


def tracking_warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "pkd.pipeline.tracking" in line]


def test_unreachable_server_warns_once_and_goes_on(repo, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    done = []
    with stage_run("teacher", params={"lr": 1}, tags={"task": "t1"}) as run:
        run.log_metrics({"acc": 1.0})
        run.log_history([{"epoch": 1, "loss": 1.0}])
        run.log_artifact(repo / "params.yaml")
        done.append(True)
    assert done and not run.active
    lines = tracking_warnings(capsys)
    assert len(lines) == 1 and url in lines[0], lines

    monkeypatch.setenv("PKD_TRACKING_STRICT", "1")
    with pytest.raises(TrackingError, match=url):
        with stage_run("teacher", params={}, tags={"task": "t1"}):
            pytest.fail("the block must not run when strict tracking fails")


def test_broken_store_warns_once(repo, capsys):
    (repo / "mlflow.db").write_bytes(b"this is not a sqlite database" * 100)
    with stage_run("teacher", params={"lr": 1}) as run:
        run.log_metrics({"acc": 1.0})
    lines = tracking_warnings(capsys)
    assert not run.active and len(lines) == 1 and f"sqlite:///{repo}/mlflow.db" in lines[0]


def test_failure_mid_run_turns_later_calls_into_noops(repo, server, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # a fresh SQLite file costs seconds
    with stage_run("teacher", params={"lr": 1}) as run:
        calls = []

        def broken(*args, **kwargs):
            calls.append(args)
            raise OSError("disk full")

        for method in ("log_batch", "log_artifact", "set_terminated"):
            monkeypatch.setattr(run._client, method, broken)
        run.log_metrics({"acc": 1.0})
        run.log_metrics({"acc": 2.0})
        run.log_artifact(repo / "params.yaml")
    assert len(calls) == 1 and not run.active
    lines = tracking_warnings(capsys)
    assert len(lines) == 1 and "disk full" in lines[0], lines


def test_tracking_off_creates_nothing(repo, monkeypatch, capsys):
    monkeypatch.setenv("PKD_TRACKING", "off")
    with stage_run("teacher", params={"lr": 1}, tags={"task": "t1"}) as run:
        run.log_metrics({"acc": 1.0})
        run.log_artifact(repo / "params.yaml")
    assert not run.active
    assert sorted(p.name for p in repo.iterdir()) == ["dvc.yaml", "params.yaml"]
    assert capsys.readouterr().err == ""
