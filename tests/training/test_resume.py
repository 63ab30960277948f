"""Crash safety and determinism: SIGKILL mid-epoch, re-run, same result as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pkd.io import atomic_dir, write_json
from pkd.training.train import last_complete_checkpoint

JOB = Path(__file__).with_name("resume_job.py")


def start(tiny_bert, work):
    return subprocess.Popen([sys.executable, str(JOB), str(tiny_bert), str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def results(work):
    history = json.loads((work / "history.json").read_text())
    return history, load_file(str(work / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tiny_bert, tmp_path_factory):
    work = tmp_path_factory.mktemp("straight")
    finish(start(tiny_bert, work))
    return results(work)


def test_same_seed_gives_identical_results(tiny_bert, tmp_path, uninterrupted):
    finish(start(tiny_bert, tmp_path))
    history, weights = results(tmp_path)
    assert history == uninterrupted[0]
    assert all((weights[k] == v).all() for k, v in uninterrupted[1].items())


def test_sigkill_mid_epoch_then_rerun_resumes_and_matches(tiny_bert, tmp_path, uninterrupted):
    proc = start(tiny_bert, tmp_path)
    deadline = time.time() + 300
    # Wait for the first complete epoch checkpoint, then kill during the next epoch.
    while last_complete_checkpoint(tmp_path / "checkpoints") is None:
        assert proc.poll() is None, "the job ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model").exists() and not (tmp_path / "history.json").exists()  # nothing half-written
    resumed_from = last_complete_checkpoint(tmp_path / "checkpoints")
    assert resumed_from is not None
    finish(start(tiny_bert, tmp_path))
    history, weights = results(tmp_path)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history == uninterrupted[0]
    assert all((weights[k] == v).all() for k, v in uninterrupted[1].items())


def test_incomplete_checkpoint_is_skipped(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 10}')
    (tmp_path / "checkpoint-20").mkdir()
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"global_st')  # killed while writing
    (tmp_path / "checkpoint-30").mkdir()  # killed before the state was written
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("killed")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_run_key_changes_with_settings_and_input_bytes(tmp_path):
    from pkd.training.resume_key import config_hash

    data = tmp_path / "prepared"
    (data / "train").mkdir(parents=True)
    (data / "train" / "data.arrow").write_bytes(b"rows")
    key = config_hash({"lr": 1e-3}, data)
    assert config_hash({"lr": 1e-3}, data) == key
    assert config_hash({"lr": 2e-3}, data) != key
    (data / "train" / "data.arrow").write_bytes(b"other rows")
    assert config_hash({"lr": 1e-3}, data) != key


@pytest.mark.slow
def test_leftover_checkpoint_is_not_resumed_after_the_data_changes(tiny_bert, tmp_path):
    """Kill the teacher stage after its first epoch, change the data, re-run: it starts fresh."""
    import yaml
    from conftest import ROOT, make_repo, run_cmd

    task = "builtin_pair"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=[task], builtin_train_size=64, builtin_dev_size=32, max_seq_length=48)
    params["teacher"].update(checkpoint=str(tiny_bert), epochs=5, batch_size=16, train_eval_samples=16)
    params["student"].update(depths=[2])
    env = make_repo(tmp_path, params)
    run_cmd([sys.executable, "stages/prepare.py", "--task", task], tmp_path, env)
    proc = subprocess.Popen([sys.executable, "stages/teacher.py", "--task", task], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (stale := [d for d in (tmp_path / "runs/checkpoints").glob("*") if last_complete_checkpoint(d)]):
        assert proc.poll() is None, "the teacher stage ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    params["data"]["builtin_train_size"] = 48
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd([sys.executable, "stages/prepare.py", "--task", task], tmp_path, env)
    run_cmd([sys.executable, "stages/teacher.py", "--task", task], tmp_path, env)
    history = json.loads((tmp_path / "metrics/train" / task / "teacher.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    # A resumed run would have consumed (and, on success, removed) the stale checkpoint.
    assert last_complete_checkpoint(stale[0]) is not None, "the stale checkpoint was resumed"
