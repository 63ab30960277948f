"""The prepare stage: progress, and the same bytes for the same inputs whatever the checkout or venv path."""
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from datasets import Dataset, DatasetDict

from pkd.data import get_task, load_task
from pkd.data.prepare import content_fingerprints, tokenize
from pkd.models.loading import load_tokenizer


def test_fingerprint_follows_content_only():
    a = DatasetDict({"train": Dataset.from_dict({"idx": [0, 1], "input_ids": [[1, 2], [3]]})})
    b = DatasetDict({"train": Dataset.from_dict({"idx": [0, 1], "input_ids": [[1, 2], [3]]})})
    c = DatasetDict({"train": Dataset.from_dict({"idx": [0, 1], "input_ids": [[1, 2], [4]]})})
    fa, fb, fc = (content_fingerprints(d)["train"]._fingerprint for d in (a, b, c))
    assert fa == fb != fc
    assert content_fingerprints(a)["train"]["input_ids"] == [[1, 2], [3]]


def checkout(root: Path, tasks: list[str]) -> Path:
    """A copy of the pipeline code with tiny built-in data params."""
    for name in ("stages", "pkd"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=tasks, builtin_train_size=48, builtin_dev_size=24, max_seq_length=32,
                          inputs={t: "pkd/data/builtin.py" for t in tasks})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.mark.slow
def test_prepare_is_byte_identical_across_checkout_and_venv_paths(tmp_path):
    tasks = ["builtin_pair"]
    venv_link = tmp_path / "elsewhere" / "venv"  # the same venv reached by another path: sys.prefix differs
    venv_link.parent.mkdir()
    venv_link.symlink_to(Path(sys.prefix), target_is_directory=True)
    runs = [(checkout(tmp_path / "one" / "repo", tasks), Path(sys.executable)),
            (checkout(tmp_path / "two" / "nested" / "clone", tasks), venv_link / "bin" / Path(sys.executable).name)]
    for repo, python in runs:
        env = {**os.environ, "PYTHONPATH": str(repo), "PKD_TRACKING": "off"}
        env.pop("PKD_PARAMS", None)
        for task in tasks:
            proc = subprocess.run([str(python), "stages/prepare.py", "--task", task], cwd=repo, env=env,
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-3000:]
    (one, _), (two, _) = runs
    files = sorted(p.relative_to(one) for p in (one / "data/prepared").rglob("*") if p.is_file())
    assert len(files) == 1 + 2 * 3  # dataset_dict.json; per split (train, dev): arrow, info, state
    assert files == sorted(p.relative_to(two) for p in (two / "data/prepared").rglob("*") if p.is_file())
    different = [str(f) for f in files if not filecmp.cmp(one / f, two / f, shallow=False)]
    assert not different


def test_tokenisation_shows_a_progress_bar_named_after_the_task(tiny_bert, capfd):
    task = get_task("builtin_pair")
    splits = load_task(task.name, "builtin", seed=0, builtin_train_size=40, builtin_dev_size=20)
    out = tokenize(splits, load_tokenizer(str(tiny_bert)), task, 32)
    assert len(out["train"]) == 40 and max(out["train"]["length"]) <= 32
    assert "tokenise builtin_pair" in capfd.readouterr().err
