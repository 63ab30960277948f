"""`pkd-sweep-table`: best-on-dev hyper-parameters per (task, strategy, depth) over DVC experiments.

The paper selects T, alpha, beta and the learning rate on dev (docs/method.md, "Hyper-parameters").
Queue the grid with `dvc exp run --queue -S ...` (docs/presets.md, "Sweeps"), run it with
`dvc queue start`, then this command reads `dvc exp show --json`, picks each
student's best setting by its dev main metric (mean over seeds), prints a Markdown table and
writes metrics/sweep_best.json, which the report includes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pkd.errors import PKDError
from pkd.evaluation.schema import read_evaluation, restore_from_exp_show
from pkd.io import write_json
from pkd.pipeline import paths
from pkd.pipeline.experiments import load_experiments
from pkd.pipeline.stage import run_stage

KNOBS = ["temperature", "alpha", "beta", "learning_rate"]


def candidate_rows(experiments: list[dict]) -> pd.DataFrame:
    rows = []
    for exp in experiments:
        params = exp["params"]
        for path, record in exp["metrics"].items():
            evaluation = paths.parse_evaluation(path)
            student = paths.parse_student_name(evaluation[1]) if evaluation else None
            if not student or not record.get("splits"):
                continue
            record = read_evaluation(restore_from_exp_show(record), path)
            strategy, depth, seed = student
            dev_split = next(s for s in record["splits"] if s.startswith("dev"))  # MNLI: dev_matched
            knobs = params.get("strategies", {}).get(strategy, {})
            rows.append({
                "task": evaluation[0],
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
    parser.add_argument("--output", type=Path, default=paths.sweep_best())
    args = parser.parse_args(argv)
    table = best_on_dev(load_experiments(args.exp_show_json))
    write_json(args.output, table.to_dict(orient="records"))
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
