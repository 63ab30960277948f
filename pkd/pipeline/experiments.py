"""DVC experiments as `pkd-sweep-table` and `pkd-teacher-study` read them.

Both run `dvc exp show --json --all-commits` (or read a file it wrote) and flatten
its tree into one entry per finished revision: its name, params and metrics.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pkd.errors import PKDError

# An experiment still queued or running lists the baseline's metrics under its own
# name (dvc exp show); a failed one has none of its own. Only finished ones count.
UNFINISHED = ("queued", "running", "failed")


def exp_show(exp_show_json: Path | None = None) -> list:
    """`dvc exp show --json --all-commits`, or the file `exp_show_json` that holds its output."""
    if exp_show_json is not None:
        return json.loads(Path(exp_show_json).read_text())
    proc = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise PKDError(f"dvc exp show failed: {last[0]}")
    return json.loads(proc.stdout)


def collect_experiments(exp_show: list) -> list[dict]:
    """Flatten `dvc exp show --json` into [{name, rev, params, metrics}] for every revision found."""
    found = []

    def visit(node):
        if isinstance(node, dict):
            if (node.get("executor") or {}).get("state") in UNFINISHED:
                return
            data = node.get("data")
            if isinstance(data, dict) and "params" in data and "metrics" in data:
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = {path: m.get("data", {}) for path, m in (data.get("metrics") or {}).items()}
                found.append({"name": node.get("name") or data.get("rev"), "rev": data.get("rev"), "params": params, "metrics": metrics})
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(exp_show)
    return found


def load_experiments(exp_show_json: Path | None = None) -> list[dict]:
    """Every finished experiment and revision, from `dvc exp show` or its saved output."""
    return collect_experiments(exp_show(exp_show_json))
