"""`pkd-sweep-table`: best-on-dev hyper-parameters per (task, strategy, depth) over DVC experiments.

The paper selects T, alpha, beta and the learning rate on dev (PKD.md, "Grid").
Queue the grid with `dvc exp run --queue -S ...` (README, "Sweeps"), run it with
`dvc queue start`, then this command reads `dvc exp show --json`, picks each
student's best setting by its dev main metric (mean over seeds), prints a Markdown table and
writes metrics/sweep_best.json, which the report includes.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

import pandas as pd

from pkd.errors import PKDError
from pkd.io import write_json
from pkd.records import parse_student_name, read_evaluation, restore_from_exp_show
from pkd.stage import run_stage

EVAL_FILE = re.compile(r"metrics/eval/(?P<task>[^/]+)/(?P<model>[^/]+)\.json$")
# An experiment still queued or running lists the baseline's metrics under its own
# name (dvc exp show); a failed one has none of its own. Only finished ones count.
UNFINISHED = ("queued", "running", "failed")
KNOBS = ["temperature", "alpha", "beta", "learning_rate"]
OUTPUT = Path("metrics/sweep_best.json")


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


def candidate_rows(experiments: list[dict]) -> pd.DataFrame:
    rows = []
    for exp in experiments:
        params = exp["params"]
        for path, record in exp["metrics"].items():
            match = EVAL_FILE.search(path)
            student = parse_student_name(match["model"]) if match else None
            if not student or not record.get("splits"):
                continue
            record = read_evaluation(restore_from_exp_show(record), match[0])
            strategy, depth, seed = student
            dev_split = next(s for s in record["splits"] if s.startswith("dev"))  # MNLI: dev_matched
            knobs = params.get("strategies", {}).get(strategy, {})
            rows.append({
                "task": match["task"],
                "strategy": strategy,
                "depth": depth,
                "seed": seed if seed is not None else record["seed"],
                "dev_score": record["splits"][dev_split][record["main_metric"]],
                "metric": f"{dev_split} {record['main_metric']}",
                "temperature": knobs.get("temperature"),
                "alpha": knobs.get("alpha"),
                "beta": knobs.get("beta"),
                "learning_rate": knobs.get("learning_rate") or params.get("student", {}).get("learning_rate"),
                "experiment": exp["name"],
            })
    return pd.DataFrame(rows)


def best_on_dev(experiments: list[dict]) -> pd.DataFrame:
    """One row per (task, strategy, depth): the setting with the highest dev main metric,
    averaged over its seeds first (a lucky seed must not pick the setting)."""
    rows = candidate_rows(experiments)
    if rows.empty:
        raise PKDError("no experiment has student evaluation metrics (metrics/eval/<task>/<strategy>-<depth>-s<seed>.json)")
    student = ["task", "strategy", "depth"]
    # The same result appears under a baseline and its experiments; keep one copy per seed.
    rows = rows.drop_duplicates(subset=[*student, "seed", "dev_score", *KNOBS])
    setting = [*student, *KNOBS]
    means = (rows.groupby(setting, dropna=False, sort=False)
             .agg(dev_score=("dev_score", "mean"), dev_std=("dev_score", "std"),
                  seeds=("dev_score", "size"), metric=("metric", "first"),
                  experiment=("experiment", lambda names: ", ".join(dict.fromkeys(names))))
             .reset_index())
    best = means.sort_values("dev_score", ascending=False, kind="stable").groupby(student, sort=True).head(1)
    counts = means.groupby(student).size().rename("candidates")
    columns = [*student, "dev_score", "dev_std", "seeds", "metric", *KNOBS, "experiment", "candidates"]
    best = best.join(counts, on=student).sort_values(["task", "depth", "strategy"]).reset_index(drop=True)
    return best[columns]


def main(argv: list[str] | None = None) -> None:
    run_stage(lambda: make_table(argv))


def make_table(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-show-json", type=Path, help="read this file instead of running `dvc exp show --json`")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.exp_show_json:
        exp_show = json.loads(args.exp_show_json.read_text())
    else:
        proc = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PKDError(f"dvc exp show failed: {proc.stderr.strip()}")
        exp_show = json.loads(proc.stdout)
    table = best_on_dev(collect_experiments(exp_show))
    write_json(args.output, table.to_dict(orient="records"))
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
