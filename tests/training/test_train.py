"""train_model under torchrun: the ranks train one model together (DDP), not one each."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JOB = Path(__file__).with_name("ddp_job.py")


@pytest.mark.slow
def test_train_model_under_torchrun_splits_the_batches_across_processes_on_a_cpu(tiny_bert, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([str(torchrun if torchrun.exists() else shutil.which("torchrun")), "--standalone",
                           "--nproc_per_node", "2", str(JOB), str(tiny_bert), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # 64 examples in batches of 16 per process: 2 steps with two processes, 4 if each trained alone.
    assert ranks == [{"world_size": 2, "parallel_mode": "ParallelMode.DISTRIBUTED", "steps": 2}] * 2
    assert (tmp_path / "model" / "model.safetensors").exists() and not (tmp_path / "checkpoints").exists()
