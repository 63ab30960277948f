"""train_model and score_model under torchrun: the ranks train one model together (DDP), and one rank saves it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JOB = Path(__file__).with_name("ddp_job.py")


def run_on_two_processes(mode, checkpoint, work):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([str(torchrun if torchrun.exists() else shutil.which("torchrun")), "--standalone",
                           "--nproc_per_node", "2", str(JOB), mode, str(checkpoint), str(work)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((work / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_train_model_under_torchrun_splits_the_batches_across_processes_on_a_cpu(tiny_bert, tmp_path):
    rank0, rank1 = run_on_two_processes("train", tiny_bert, tmp_path)
    # 64 examples in batches of 16 per process: 2 steps with two processes, 4 if each trained alone.
    ddp = {"world_size": 2, "parallel_mode": "ParallelMode.DISTRIBUTED", "steps": 2}
    assert rank0 == {**ddp, "wrote": ["model", "history.json"]}
    assert rank1 == {**ddp, "wrote": []}
    assert (tmp_path / "model" / "model.safetensors").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_an_already_fine_tuned_model_is_saved_by_one_process_under_torchrun(tiny_bert, tmp_path):
    rank0, rank1 = run_on_two_processes("score", tiny_bert, tmp_path)
    assert rank0 == {"wrote": ["model", "history.json"]} and rank1 == {"wrote": []}
    assert (tmp_path / "model" / "model.safetensors").exists()
