"""Every maintained benchmark runs end to end on a tiny setting (`--smoke`), so that a change to
the library cannot silently break it. The numbers mean nothing; that the script gets through
its code path, and writes its record, is the check. Dated studies (benchmarks/studies/) are not run.
"""
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
# Each maintained script and what its smoke run needs beyond --smoke. "{tiny}" is a random
# 4-layer BERT with the real vocabulary (tiny_models.save_tiny_bert): seconds, not minutes.
SMOKE = {
    "cache_speedup.py": ["--checkpoint", "{tiny}", "--threads", "1"],
    "padding.py": ["--checkpoint", "{tiny}", "--threads", "1"],
    "inference.py": ["--checkpoint", "{tiny}", "--threads", "1"],
    "deploy.py": ["--checkpoint", "{tiny}", "--threads", "1"],
    "int8_threads.py": ["--checkpoint", "{tiny}"],
    "pipeline_overhead.py": ["--threads", "1", "--no-tracking"],
    "gpu_smoke.py": ["--allow-cpu"],
}


def test_every_maintained_benchmark_has_a_smoke_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SMOKE), "a script in benchmarks/ is maintained: give it --smoke and a line here"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_smoke_run(script, tiny_bert, tmp_path):
    record = tmp_path / "record.json"
    args = [a.replace("{tiny}", str(tiny_bert)) for a in SMOKE[script]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(record), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, f"{script} --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert json.loads(record.read_text())["benchmark"]
