"""The paper's tables as DataFrames of display strings (scores x100, one decimal).

Table 1: Teacher, then per student depth the strategies of the paper's Table 1 and
every strategy registered beyond the paper's four (pkd.method.strategies), one column per
task (MNLI as -m / -mm), plus the average of the main metrics; every cell is the mean
± sample std over the student seeds, with their count. The paired table compares
methods seed by seed (pkd/report/stats.py). Table 2: the strategies with a patient
loss, i.e. which teacher layers to learn from, per depth. Table 3: inference cost
from timing.json. Rows, their order and labels come from the strategy registry.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pkd.method import strategies as registry
from pkd.report.load import Metrics
from pkd.report.stats import mean_std, paired_t_interval, verdict

MISSING = "-"
AVERAGE = "Average"
# GLUE's MNLI splits: dev_matched -> "mnli-m", dev_mismatched -> "mnli-mm".
_SPLIT_SUFFIX = {"matched": "m", "mismatched": "mm"}


@dataclass(frozen=True)
class Column:
    """One score column of Tables 1 and 2: a task scored on one split."""

    label: str
    task: str
    split: str


def _pct(value: float | None) -> str:
    if value is None:
        return MISSING
    return "nan" if math.isnan(value) else f"{100 * value:.1f}"


def task_order(evals: pd.DataFrame, preferred: Sequence[str] | str | None = None) -> list[str]:
    """Tasks in the caller's order (the config's task list, or "a, b" as one string),
    then the rest sorted."""
    if isinstance(preferred, str):
        preferred = [t.strip() for t in preferred.split(",")]
    present = set(evals["task"])
    first = [t for t in dict.fromkeys(preferred or []) if t in present]
    return first + sorted(present - set(first))


def score_columns(evals: pd.DataFrame, split: str, tasks: Sequence[str]) -> list[Column]:
    """Columns for `split` ("dev" or "test"): split "dev" itself, or "dev_<x>" (MNLI)."""
    cols = []
    for task in tasks:
        names = sorted(
            s for s in evals.loc[evals["task"] == task, "split"].unique()
            if s == split or s.startswith(split + "_")
        )
        for name in names:
            suffix = name[len(split) + 1:]
            label = task if not suffix else f"{task}-{_SPLIT_SUFFIX.get(suffix, suffix)}"
            cols.append(Column(label, task, name))
    if not cols:
        raise ValueError(
            f"no '{split}' split in any eval file; splits present: {sorted(evals['split'].unique())}"
        )
    return cols


def scores(m: Metrics, columns: Sequence[Column]) -> pd.DataFrame:
    """Long frame, one row per (model, column): model, group, seed, role, strategy, depth,
    column, main (the main metric as a fraction, or None) and values ({metric: value}).

    group names a result up to its seed: "teacher", or "<strategy>-<depth>"."""
    ev = m.evals
    rows = []
    for col in columns:
        sub = ev[(ev["task"] == col.task) & (ev["split"] == col.split)]
        for model, grp in sub.groupby("model", sort=False):
            first = grp.iloc[0]
            values = dict(zip(grp["metric"], grp["value"]))
            teacher = first["role"] == "teacher"
            rows.append({
                "model": model,
                "group": "teacher" if teacher else f"{first['strategy']}-{int(first['depth'])}",
                # A file without a seed (written before seeds existed) counts as one seed.
                "seed": 0 if pd.isna(first["seed"]) else int(first["seed"]),
                "role": first["role"], "strategy": first["strategy"],
                "depth": int(first["depth"]), "column": col.label,
                "main": values.get(first["main_metric"]),
                "values": {k: values.get(k) for k in first["metric_names"]},
            })
    return pd.DataFrame.from_records(rows, columns=[
        "model", "group", "seed", "role", "strategy", "depth", "column", "main", "values"])


def _stat_cell(values: Sequence[float]) -> str:
    """x100, one decimal; "mean±std" over seeds when there are several."""
    values = [v for v in values if v is not None and not pd.isna(v)]
    if not values:
        return MISSING
    mean, sd = mean_std(values)
    return _pct(mean) if sd is None else f"{_pct(mean)}±{100 * sd:.1f}"


def seed_averages(sc: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """Per (group, seed): the mean main metric over all columns, or None unless every
    column has one (an average over a subset of tasks would not be comparable)."""
    rows = []
    for (group, seed), grp in sc.groupby(["group", "seed"], sort=False, dropna=False):
        mains = grp.set_index("column")["main"]
        vals = [mains.get(c.label) for c in columns]
        avg = None if any(v is None or pd.isna(v) for v in vals) else sum(vals) / len(vals)
        rows.append({"group": group, "seed": seed, "average": avg})
    return pd.DataFrame.from_records(rows, columns=["group", "seed", "average"])


def summary(sc: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """One row per (group, column) plus (group, "Average"): role, strategy, depth, the
    mean main metric over seeds (fraction), the display cell and n (seeds)."""
    rows = []
    for (group, column), grp in sc.groupby(["group", "column"], sort=False):
        first = grp.iloc[0]
        names = list(first["values"])
        cell = "/".join(_stat_cell([v.get(name) for v in grp["values"]]) for name in names)
        mains = [v for v in grp["main"] if v is not None and not pd.isna(v)]
        rows.append({"group": group, "role": first["role"], "strategy": first["strategy"],
                     "depth": int(first["depth"]), "column": column,
                     "main": mean_std(mains)[0] if mains else None, "cell": cell,
                     "n": len(grp)})
    avg = seed_averages(sc, columns)
    for group, grp in avg.groupby("group", sort=False):
        vals = [v for v in grp["average"] if v is not None and not pd.isna(v)]
        first = sc[sc["group"] == group].iloc[0]
        complete = len(vals) == len(grp)  # every seed has every column
        rows.append({"group": group, "role": first["role"], "strategy": first["strategy"],
                     "depth": int(first["depth"]), "column": AVERAGE,
                     "main": mean_std(vals)[0] if complete else None,
                     "cell": _stat_cell(vals) if complete else MISSING, "n": len(grp)})
    return pd.DataFrame.from_records(
        rows, columns=["group", "role", "strategy", "depth", "column", "main", "cell", "n"])


def student_depths(evals: pd.DataFrame) -> list[int]:
    return sorted({int(d) for d in evals.loc[evals["role"] != "teacher", "depth"]}, reverse=True)


def teacher_depth_label(evals: pd.DataFrame) -> str:
    """The teacher's depth for Table 1's Layers column ("12", or "6/12" for a mixed run)."""
    depths = sorted({int(d) for d in evals.loc[evals["role"] == "teacher", "depth"]})
    return "/".join(map(str, depths)) or MISSING


def _table(summ: pd.DataFrame, columns: Sequence[Column],
           rows: Sequence[tuple[str, str, str]], best_epochs: dict[str, str] | None = None) -> pd.DataFrame:
    """rows: (Model label, Layers, group); absent groups are left out. Seeds: how many
    students each cell summarises (mean±std over them). best_epochs: {group: cell}, a
    "Best epoch" column after Seeds (report.selection best_dev)."""
    cells = summ.set_index(["group", "column"])["cell"]
    counts = summ.groupby("group")["n"].max()
    records = []
    for label, layers, group in rows:
        if group not in counts.index:
            continue
        rec = {"Model": label, "Layers": layers, "Seeds": str(int(counts[group]))}
        if best_epochs is not None:
            rec["Best epoch"] = best_epochs.get(group, MISSING)
        for c in [*(c.label for c in columns), AVERAGE]:
            rec[c] = cells.get((group, c), MISSING)
        records.append(rec)
    first = ["Model", "Layers", "Seeds", *(["Best epoch"] if best_epochs is not None else [])]
    return pd.DataFrame.from_records(records, columns=[*first, *[c.label for c in columns], AVERAGE])


def table1_strategies() -> list[str]:
    """Table 1's student rows, in registry order: the paper's Table 1 (its four but the
    alternative layer maps, which Table 2 compares) and every strategy registered beyond
    them (README, "Add your own strategy")."""
    extras = registry.extras()
    return [s for s in registry.names()
            if s in extras or s == registry.PKD or not registry.get_strategy(s).patient]


def table2_strategies() -> list[str]:
    """Table 2's rows, in registry order: every strategy with a patient loss."""
    return [s for s in registry.names() if registry.get_strategy(s).patient]


def _strategy_rows(m: Metrics, strategies: Sequence[str], projected: Collection[str]) -> list[tuple[str, str, str]]:
    return [(registry.label(s, s in projected), str(d), f"{s}-{d}") for d in student_depths(m.evals) for s in strategies]


def table1_main(m: Metrics, summ: pd.DataFrame, columns: Sequence[Column],
                best_epochs: dict[str, str] | None = None, projected: Collection[str] = ()) -> pd.DataFrame:
    """The teacher and Table 1's students; `projected`: the strategies trained with a learned
    projection (labelled "<label> + proj"), here and in every table below."""
    rows = [("Teacher", teacher_depth_label(m.evals), "teacher"), *_strategy_rows(m, table1_strategies(), projected)]
    return _table(summ, columns, rows, best_epochs)


def table2_skip_vs_last(m: Metrics, summ: pd.DataFrame, columns: Sequence[Column],
                        projected: Collection[str] = ()) -> pd.DataFrame:
    return _table(summ, columns, _strategy_rows(m, table2_strategies(), projected))


PAIRED_COLUMNS = ["Comparison", "Layers", "Column", "Seeds", "Mean difference",
                  "95% interval", "Verdict"]


def paired_differences(m: Metrics, sc: pd.DataFrame, columns: Sequence[Column],
                       projected: Collection[str] = ()) -> pd.DataFrame:
    """Per depth, comparison and score column (plus the average over columns): the mean
    over seeds of (a - b) in points of the main metric, its paired t-interval and what
    it shows. Only seeds that both students have are paired."""
    per_column = sc.set_index(["group", "seed", "column"])["main"]
    averages = seed_averages(sc, columns).set_index(["group", "seed"])["average"]

    def per_seed(group: str, column: str) -> dict:
        if column == AVERAGE:
            return {s: v for (g, s), v in averages.items() if g == group and v is not None}
        return {s: v for (g, s, c), v in per_column.items()
                if g == group and c == column and v is not None and not pd.isna(v)}

    records = []
    for d in student_depths(m.evals):
        for a, b in registry.comparisons():
            for column in [*(c.label for c in columns), AVERAGE]:
                va, vb = per_seed(f"{a}-{d}", column), per_seed(f"{b}-{d}", column)
                seeds = sorted(set(va) & set(vb))
                if not seeds:
                    continue
                iv = paired_t_interval([100 * (va[s] - vb[s]) for s in seeds])
                la, lb = registry.label(a, a in projected), registry.label(b, b in projected)
                records.append(dict(zip(PAIRED_COLUMNS, [
                    f"{la} − {lb}", str(d), column, str(iv.n), f"{iv.mean:+.1f}",
                    MISSING if iv.low is None else f"[{iv.low:+.1f}, {iv.high:+.1f}]",
                    verdict(iv, la, lb),
                ])))
    return pd.DataFrame.from_records(records, columns=PAIRED_COLUMNS)


TABLE3_COLUMNS = [
    "Model", "Layers", "Parameters (M)",
    "Latency b1, dev lengths (ms)", "Latency b1, len 128 (ms)",
    "Throughput b32, dev lengths (ex/s)", "Throughput b32, len 128 (ex/s)",
    "Speed-up b1 (dev)", "Speed-up b32 (dev)", "Speed-up b1 (len 128)", "Speed-up b32 (len 128)",
    "Layer ratio N/M", "Runtime", "Size (MB)",
]
# The runtimes a model is timed and exported in, by the names timing.json gives them (the
# export records' "pytorch_fp32" is read as "pytorch": pkd.report.load), and their labels
# in every table and figure.
PYTORCH = "pytorch"
RUNTIME_LABELS = {PYTORCH: "PyTorch fp32", "onnx_fp32": "ONNX Runtime fp32", "onnx_int8": "ONNX Runtime int8"}
ONNX_RUNTIMES = ("onnx_fp32", "onnx_int8")


def _spread(stat: Any, fmt: str) -> str:
    """'median [p25, p75]' from a timing statistic."""
    if not isinstance(stat, dict) or stat.get("median") is None:
        return MISSING
    med = format(stat["median"], fmt)
    if stat.get("p25") is None or stat.get("p75") is None:
        return med
    return f"{med} [{format(stat['p25'], fmt)}, {format(stat['p75'], fmt)}]"


def _times(value: Any) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def table3_inference(timing: dict[str, Any] | None) -> pd.DataFrame:
    if not timing:
        return pd.DataFrame(columns=TABLE3_COLUMNS)
    models = timing["models"]
    teacher = next((r for r in models if r.get("model") == "teacher" and r.get("runtime", PYTORCH) == PYTORCH), None)
    n_layers = teacher.get("depth") if teacher else None
    records = []
    for r in models:
        speed = r.get("speedup") or {}
        params = r.get("parameters")
        depth = r.get("depth")
        runtime = r.get("runtime", PYTORCH)
        size = r.get("size_mb")
        name = r.get("model", MISSING)
        records.append(dict(zip(TABLE3_COLUMNS, [
            name if runtime == PYTORCH else f"{name} ({RUNTIME_LABELS.get(runtime, runtime)})",
            MISSING if depth is None else str(depth),
            MISSING if params is None else f"{params / 1e6:.1f}",
            _spread(r.get("latency_b1_dev_ms"), ".2f"),
            _spread(r.get("latency_b1_len128_ms"), ".2f"),
            _spread(r.get("throughput_b32_dev"), ".0f"),
            _spread(r.get("throughput_b32_len128"), ".0f"),
            _times(speed.get("latency_b1_dev")),
            _times(speed.get("throughput_b32_dev")),
            _times(speed.get("latency_b1_len128")),
            _times(speed.get("throughput_b32_len128")),
            _times(n_layers / depth) if n_layers and depth else MISSING,
            RUNTIME_LABELS.get(runtime, runtime),
            MISSING if size is None else f"{size:.1f}",
        ])))
    return pd.DataFrame.from_records(records, columns=TABLE3_COLUMNS)


TABLE4_COLUMNS = [
    "Task", "Model", "Layers", "Seed", "PyTorch fp32", "ONNX fp32", "ONNX int8",
    "ONNX fp32 agreement (%)", "ONNX fp32 max abs diff", "int8 agreement (%)",
    "Size fp32 (MB)", "Size int8 (MB)",
]


def table4_deployment(exports: pd.DataFrame | None, projected: Collection[str] = ()) -> pd.DataFrame:
    """Exported students: dev main metric per variant, agreement with PyTorch, sizes."""
    if exports is None or exports.empty:
        return pd.DataFrame(columns=TABLE4_COLUMNS)
    records = []
    for (task, model), grp in exports.groupby(["task", "model"], sort=False):
        v = grp.set_index("variant")
        strategy, depth = grp.iloc[0]["strategy"], grp.iloc[0]["depth"]

        def num(variant, key, fmt, scale=1.0, v=v):
            value = v[key].get(variant)
            return MISSING if value is None or pd.isna(value) else format(scale * value, fmt)

        records.append(dict(zip(TABLE4_COLUMNS, [
            task, registry.label(strategy, strategy in projected), str(depth),
            MISSING if pd.isna(grp.iloc[0].get("seed")) else str(int(grp.iloc[0]["seed"])),
            num(PYTORCH, "main", ".1f", 100), num("onnx_fp32", "main", ".1f", 100),
            num("onnx_int8", "main", ".1f", 100), num("onnx_fp32", "agreement", ".1f", 100),
            num("onnx_fp32", "max_abs_diff", ".1e"), num("onnx_int8", "agreement", ".1f", 100),
            num("onnx_fp32", "size_mb", ".1f"), num("onnx_int8", "size_mb", ".1f"),
        ])))
    return pd.DataFrame.from_records(records, columns=TABLE4_COLUMNS)


LOSS_COLUMNS = ["Task", "Model", "Layers", "Seeds", "Epoch", "(1−α)·L_CE", "α·L_DS", "β·L_PT"]


def loss_terms(histories: pd.DataFrame, weights: dict[str, dict[str, float]],
               projected: Collection[str] = ()) -> pd.DataFrame:
    """Each weighted loss term of the distilling strategies, in their first and last epoch:
    its mean over seeds and, in parentheses, its mean share of the training loss (%).

    weights: {strategy: {"alpha": a, "beta": b}}, the params the students trained with. The
    histories hold the unweighted per-epoch means loss_ce, loss_ds and loss_pt."""
    needed = {"loss_ce", "loss_ds", "loss_pt", "strategy"}
    if histories.empty or not needed <= set(histories.columns):
        return pd.DataFrame(columns=LOSS_COLUMNS)
    students = histories[histories["strategy"].notna() & histories["loss_ce"].notna()]
    records = []
    for (task, strategy, depth), grp in students.groupby(["task", "strategy", "depth"], sort=False):
        w = weights.get(strategy)
        if not w or (w["alpha"] == 0 and w["beta"] == 0):
            continue
        trained = grp[grp["epoch"] >= 1]
        for epoch in sorted({int(trained["epoch"].min()), int(trained["epoch"].max())}):
            at = trained[trained["epoch"] == epoch]
            terms = pd.DataFrame({"ce": (1 - w["alpha"]) * at["loss_ce"], "ds": w["alpha"] * at["loss_ds"],
                                  "pt": w["beta"] * at["loss_pt"]})
            shares = terms.div(terms.sum(axis=1), axis=0)
            cells = [f"{terms[k].mean():.3g} ({100 * shares[k].mean():.0f}%)" for k in ("ce", "ds", "pt")]
            records.append(dict(zip(LOSS_COLUMNS, [task, registry.label(strategy, strategy in projected), str(int(depth)),
                                                   str(len(at)), str(epoch), *cells])))
    return pd.DataFrame.from_records(records, columns=LOSS_COLUMNS)


def best_epoch_cells(sc: pd.DataFrame, epochs: pd.DataFrame) -> dict[str, str]:
    """Per group: the mean best dev epoch over its runs and columns, and the epochs trained ("2.7 of 4")."""
    chosen = sc[["model", "group"]].drop_duplicates().merge(epochs, on="model")
    # A teacher used as is (teacher.fine_tuned) was never trained here: one epoch-0 record.
    return {group: f"{grp['epoch'].mean():.1f} of {int(grp['of'].max())}" if grp["of"].max() > 0 else MISSING
            for group, grp in chosen.groupby("group", sort=False)}
