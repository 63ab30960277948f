"""Shared fixtures: a tiny random BERT saved to disk and small built-in data."""
import contextlib
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one test process per core: one thread each, also in the stages they
    # start, or torch's thread pools oversubscribe the cores. Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
from tiny_models import save_tiny_bert  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_splits(tiny_bert):
    """Tokenised built-in sentiment data: 96 train, 48 dev examples."""
    from pkd.data import get_task, load_task
    from pkd.data.prepare import tokenize
    from pkd.models.loading import load_tokenizer

    task = get_task("builtin_sentiment")
    splits = load_task(task.name, "builtin", seed=0, builtin_train_size=96, builtin_dev_size=48)
    return tokenize(splits, load_tokenizer(str(tiny_bert)), task, 64)


def save_hf_classifier(path, labels=("negative", "positive")):
    """A classifier saved by plain transformers code, as one fine-tuned elsewhere is: no pkd keys."""
    from tiny_models import DEFAULT_CHECKPOINT
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pkd.models.loading import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(DEFAULT_CHECKPOINT))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, id2label=dict(enumerate(labels)))
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


COPIED = ["dvc.yaml", "params.yaml", "stages", "pkd", "presets", ".dvcignore", "reports/.gitignore"]


def run_cmd(cmd, cwd, env=None, timeout=900):
    """Run a command, failing the test with its output tails if it fails."""
    import subprocess

    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def with_inputs(params: dict) -> dict:
    """Set data.inputs (which dvc.yaml's prepare stages depend on) for the tasks a test chose."""
    from pkd.pipeline.params import DataParams, task_inputs

    data = {k: v for k, v in params["data"].items() if k != "inputs"}
    params["data"]["inputs"] = task_inputs(DataParams.model_validate(data))
    return params


def make_repo(root: Path, params: dict) -> dict:
    """A temporary copy of the pipeline as its own git + DVC repository; returns the env to run it."""
    import os
    import shutil
    import sys

    import yaml

    for name in COPIED:
        src = ROOT / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    for junk in root.rglob("__pycache__"):
        shutil.rmtree(junk)
    with_inputs(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlartifacts/\nruns/\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PKD_PARAMS", None)
    run_cmd(["git", "init", "-q"], root)
    run_cmd(["dvc", "init", "-q"], root)
    run_cmd(["git", "add", "-A"], root)
    run_cmd(["git", "commit", "-qm", "pipeline"], root)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `mlflow server` (one worker, SQLite, proxied artifacts) on a free port."""
    d = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server",
           "--backend-store-uri", f"sqlite:///{d}/mlflow.db",
           "--artifacts-destination", str(d / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = open(d / "server.log", "wb")
    # Own session so teardown can stop the server and the uvicorn worker it spawns.
    # No job runner: its huey consumers only slow the start-up down on a small machine.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # 2 shared CPUs can be slow
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not come up:\n{(d / 'server.log').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
        # uvicorn waits out idle keep-alive connections; a tmp server need not.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


class RecordingBar:
    """Stands in for tqdm: records each bar's description and how many steps it saw."""

    bars: ClassVar[list] = []

    def __init__(self, iterable=None, total=None, desc=None, **kwargs):
        self.iterable, self.total, self.desc, self.steps = iterable, total, desc, 0
        RecordingBar.bars.append(self)

    def __iter__(self):
        for item in self.iterable:
            self.steps += 1
            yield item

    def update(self, n=1):
        self.steps += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
