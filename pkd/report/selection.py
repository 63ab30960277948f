"""Which epoch of each run the report scores (`report.selection`).

`last` scores the saved model, the one that is evaluated, timed and shipped. `best_dev`
is the authors' protocol: every run is scored at its best epoch on dev, read from its
training history (metrics/train/<task>/<model>.json), which records every epoch's dev
metrics. It chooses on the split it then reports, so it is optimistic, and every table
built from it says so.
"""

from __future__ import annotations

import pandas as pd

from pkd.allowed_values import SELECTIONS
from pkd.errors import MetricsError
from pkd.report.load import Metrics

LABELS = {
    "last": "last epoch (the saved model)",
    "best_dev": "best epoch on dev per run (dev-selected, optimistic: the authors' protocol)",
}


def check_selection(selection: str, split: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"report.selection: unknown '{selection}'; allowed: {', '.join(SELECTIONS)}")
    if selection == "best_dev" and split != "dev":
        raise ValueError(f"report.selection best_dev picks epochs on dev; it cannot score the '{split}' split")


def _history_dev_split(evals: pd.DataFrame, task: str) -> str | None:
    """The eval split a history's dev_* keys score: the task's first dev split (MNLI: matched)."""
    splits = sorted(s for s in evals.loc[evals["task"] == task, "split"].unique()
                    if s == "dev" or s.startswith("dev_"))
    return splits[0] if splits else None


def best_epoch(history: pd.DataFrame, main_metric: str) -> pd.Series:
    """The history row with the highest dev main metric; the earliest epoch on a tie."""
    key = f"dev_{main_metric}"
    scored = history[history[key].notna()] if key in history else history.iloc[0:0]
    if scored.empty:
        raise MetricsError(f"{history['source'].iloc[0]}: no epoch has '{key}'")
    ordered = scored.sort_values("epoch", kind="stable")
    return ordered.loc[ordered[key].idxmax()]


def best_dev(m: Metrics) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evals, epochs): m.evals with each model's dev scores taken from its best dev epoch, and
    one row per (task, model) with the chosen `epoch` and the history's last epoch `of`.

    Only the split the histories score is kept among the dev splits (MNLI's mismatched has no
    per-epoch scores); other splits are left as they are. A model without a history is refused."""
    rows, epochs = [], []
    for (task, model), grp in m.evals.groupby(["task", "model"], sort=False):
        dev_split = _history_dev_split(m.evals, task)
        keep = grp[~grp["split"].str.startswith("dev") | (grp["split"] == dev_split)]
        if dev_split is None:
            rows.append(keep)
            continue
        history = m.histories[(m.histories["task"] == task) & (m.histories["model"] == model)]
        if history.empty:
            raise MetricsError(f"report.selection best_dev: no training history "
                               f"train/{task}/{model}.json for {task}/{model}")
        best = best_epoch(history, grp["main_metric"].iloc[0])
        dev = keep["split"] == dev_split
        keep = keep.copy()
        keep.loc[dev, "value"] = [float(best.get(f"dev_{metric}", float("nan")))
                                  for metric in keep.loc[dev, "metric"]]
        keep.loc[dev, "source"] = best["source"]
        rows.append(keep)
        epochs.append({"task": task, "model": model, "epoch": int(best["epoch"]),
                       "of": int(history["epoch"].max())})
    evals = pd.concat(rows, ignore_index=True) if rows else m.evals.iloc[0:0]
    return evals, pd.DataFrame.from_records(epochs, columns=["task", "model", "epoch", "of"])
