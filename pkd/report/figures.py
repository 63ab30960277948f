"""The report's figures, returned as PNG bytes.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so building a
report neither needs a display nor changes the caller's matplotlib backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pkd.method import strategies as registry
from pkd.report.tables import PYTORCH, RUNTIME_LABELS, Column

TEACHER_STYLE = ("black", "*")


def style(strategy: str | None) -> tuple[str, str]:
    """(colour, marker) of a method, the same in every figure: the registry's, black star for the teacher."""
    if strategy is None:
        return TEACHER_STYLE
    spec = registry.get_strategy(strategy) if strategy in registry.names() else registry.Strategy(strategy, strategy)
    return spec.color, spec.marker


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" stamp: the same inputs give the same bytes (DVC sees no change).
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _grid(n: int, ncols_max: int = 3, size: tuple[float, float] = (4.0, 3.2)):
    ncols = max(1, min(n, ncols_max))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _empty(message: str) -> bytes:
    fig = Figure(figsize=(6, 2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _png(fig)


def metric_vs_depth(sc: pd.DataFrame, columns: Sequence[Column], metric_label: str,
                    projected: Collection[str] = ()) -> bytes:
    """(a) dev main metric vs student depth, a line per method, teacher dashed."""
    fig, axes = _grid(len(columns))
    students = sc[sc["role"] != "teacher"]
    depths = sorted(students["depth"].unique())
    for ax, col in zip(axes, columns):
        here = sc[sc["column"] == col.label]
        for strategy, label in ((s, registry.label(s, s in projected)) for s in registry.names()):
            pts = here[here["strategy"] == strategy].dropna(subset=["main"]).sort_values("depth")
            if not pts.empty:
                color, marker = style(strategy)
                ax.plot(pts["depth"], 100 * pts["main"], color=color, marker=marker, label=label)
        teacher = here[here["role"] == "teacher"].dropna(subset=["main"])
        if not teacher.empty:
            row = teacher.iloc[0]
            ax.axhline(100 * row["main"], color="black", linestyle="--",
                       label=f"Teacher ({row['depth']}L)")
        ax.set_title(col.label)
        ax.set_xticks(depths)
        ax.set_xlabel("student layers")
        ax.set_ylabel(metric_label)
        ax.grid(alpha=0.3)
    legend = {}  # union over panels: a method missing from one panel still gets a key
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=max(1, len(legend)), frameon=False)
    return _png(fig)


def _curve_keys(run: pd.DataFrame) -> tuple[str, str | None] | None:
    """(train key, dev key) of a history: accuracy, or the main-metric "score" that
    training writes for tasks whose main metric is not accuracy (CoLA, STS-B)."""
    for name in ("accuracy", "score"):
        train = f"train_{name}"
        if train in run.columns and run[train].notna().any():
            dev = f"dev_{name}"
            return train, dev if dev in run.columns and run[dev].notna().any() else None
    return None


def figure2_strategies() -> list[str]:
    """Figure 2's methods, in registry order: the paper's KD and PKD, and every extra strategy."""
    extras = registry.extras()
    return [s for s in registry.names() if s in (registry.KD, registry.PKD) or s in extras]


def train_vs_dev(histories: pd.DataFrame, tasks: Sequence[str], depths: Sequence[int],
                 projected: Collection[str] = ()) -> bytes:
    """(b) the paper's overfitting figure: train (solid) and dev (dashed) accuracy per
    epoch (mean over seeds) of the paper's KD and PKD and of every strategy registered
    beyond the paper's four; a row per student depth, a column per task."""
    methods = figure2_strategies()
    labels = {s: registry.label(s, s in projected) for s in methods}
    hist = histories[histories["strategy"].isin(methods)] if not histories.empty else histories
    if hist.empty or not any(k in hist.columns for k in ("train_accuracy", "train_score")):
        return _empty(f"No {' / '.join(labels.values())} training histories (metrics/train/) were found.")
    panels = [(d, t) for d in depths for t in tasks
              if not hist[(hist["depth"] == d) & (hist["task"] == t)].empty]
    ncols = max(1, len(tasks))
    fig = Figure(figsize=(4.0 * ncols, 3.0 * max(1, len(depths))), layout="constrained")
    axes = fig.subplots(max(1, len(depths)), ncols, squeeze=False)
    for i, d in enumerate(depths):
        for j, t in enumerate(tasks):
            ax = axes[i][j]
            if (d, t) not in panels:
                ax.set_visible(False)
                continue
            for strategy in methods:
                run = hist[(hist["depth"] == d) & (hist["task"] == t)
                           & (hist["strategy"] == strategy)]
                # One curve per method: the mean over its seeds, epoch by epoch.
                run = run.groupby("epoch", as_index=False).mean(numeric_only=True)
                if run.empty:
                    continue
                keys = _curve_keys(run)
                if keys is None:
                    continue
                color, _ = style(strategy)
                ax.plot(run["epoch"], 100 * run[keys[0]], color=color, linestyle="-")
                if keys[1]:
                    ax.plot(run["epoch"], 100 * run[keys[1]], color=color, linestyle="--")
                ax.set_ylabel("accuracy (%)" if keys[0] == "train_accuracy"
                              else "main metric (%)")
            ax.set_title(f"{t}, {d}-layer student")
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=style(s)[0], label=labels[s]) for s in methods]
    handles += [Line2D([], [], color="black", linestyle="-", label="train"),
                Line2D([], [], color="black", linestyle="--", label="dev")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return _png(fig)


RUNTIME_STYLE = {  # how each deployable variant is drawn: marker override, hollow
    PYTORCH: (None, False),
    "onnx_fp32": (None, True),
    "onnx_int8": ("D", False),
}


def accuracy_vs_speedup(points: pd.DataFrame, metric_label: str, projected: Collection[str] = ()) -> bytes:
    """(c) average dev metric vs batch-32 throughput speed-up, a point per deployable model.

    points: columns label, strategy, runtime (pytorch | onnx_fp32 | onnx_int8 | paper),
    speedup, score. PyTorch and paper points are labelled; ONNX points are told apart
    by marker (legend)."""
    pts = points.dropna(subset=["speedup", "score"])
    if "runtime" not in pts:
        pts = pts.assign(runtime=PYTORCH)
    ours = pts[pts["runtime"] != "paper"]
    if ours.empty:
        return _empty("No model has both a timing result (timing.json) and scores on every task.")
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.subplots()
    order = [None, *registry.names()]
    for runtime, (marker_override, hollow) in RUNTIME_STYLE.items():
        here = ours[ours["runtime"] == runtime]
        for key in order + sorted(set(here["strategy"].dropna()) - set(order)):
            grp = here[here["strategy"].isna()] if key is None else here[here["strategy"] == key]
            if grp.empty:
                continue
            color, marker = style(key)
            label = ("Teacher" if key is None else registry.label(key, key in projected)) if runtime == PYTORCH else None
            ax.scatter(grp["speedup"], grp["score"], marker=marker_override or marker, s=60, zorder=3,
                       facecolors="none" if hollow else color, edgecolors=color, label=label)
    paper = pts[pts["runtime"] == "paper"]
    if not paper.empty:
        ax.scatter(paper["speedup"], paper["score"], marker="*", s=160, color="tab:purple", zorder=3,
                   label="Sun et al. 2019 (published, BERT-base teacher)")
    labelled = pts[pts["runtime"].isin([PYTORCH, "paper"])]
    # Models of one depth share an x; alternate their labels right/left by score so
    # close scores do not print on top of each other.
    for _, cluster in labelled.groupby("speedup"):
        for i, (_, p) in enumerate(cluster.sort_values("score").iterrows()):
            right = i % 2 == 0
            ax.annotate(p["label"], (p["speedup"], p["score"]), xytext=(7 if right else -7, 0),
                        textcoords="offset points", va="center",
                        ha="left" if right else "right", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    for runtime, (marker_override, hollow) in RUNTIME_STYLE.items():
        if runtime != PYTORCH and (ours["runtime"] == runtime).any():
            handles.append(Line2D([], [], linestyle="", marker=marker_override or "o", color="black",
                                  markerfacecolor="none" if hollow else "black"))
            labels.append(RUNTIME_LABELS[runtime])
    ax.set_xlabel("throughput speed-up vs the PyTorch fp32 teacher (batch 32, dev lengths)")
    ax.set_ylabel(metric_label)
    ax.margins(x=0.25, y=0.1)
    ax.grid(alpha=0.3)
    ax.legend(handles, labels, frameon=False, fontsize=8)
    return _png(fig)
