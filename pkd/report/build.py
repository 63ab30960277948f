"""build_report: metrics files on disk -> tables (CSV), figures (PNG), report (MD, HTML)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pkd.report import figures, paper, stats, tables
from pkd.report.load import Metrics, load_metrics
from pkd.report.render import Block, Bullets, Heading, Image, Para, Table, to_html, to_markdown

TITLE = "Patient Knowledge Distillation: reproduction report"
OUTPUTS = (
    "table1_main.csv", "table1_paired_differences.csv", "table1_retention.csv",
    "table2_skip_vs_last.csv",
    "table3_inference.csv",
    "fig_metric_vs_depth.png", "fig_train_vs_dev.png", "fig_accuracy_vs_speedup.png",
    "report.md", "report.html",
)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _config_table(config: dict[str, Any], metrics_dir: Path, split: str) -> pd.DataFrame:
    def show(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return ", ".join(map(str, v))
        if isinstance(v, dict):
            return json.dumps(v, sort_keys=True)
        return "-" if v is None else str(v)

    rows = [(str(k), show(v)) for k, v in config.items()]
    rows += [("metrics directory", str(metrics_dir)), ("scored split", split)]
    return pd.DataFrame(rows, columns=["Setting", "Value"])


def _column_notes(m: Metrics, columns: list[tables.Column]) -> list[str]:
    notes = []
    for c in columns:
        rows = m.evals[(m.evals["task"] == c.task) & (m.evals["split"] == c.split)]
        first = rows.iloc[0]
        shown = "/".join(first["metric_names"])
        ns = sorted({int(n) for n in rows["n"].dropna()})
        n = f", n = {'/'.join(map(str, ns))}" if ns else ""
        notes.append(f"`{c.label}`: split `{c.split}`, cell {shown}, main metric "
                     f"{first['main_metric']}{n}")
    return notes


def _speedup_points(m: Metrics, summ: pd.DataFrame) -> pd.DataFrame:
    """One point per method and depth: its average main metric (mean over seeds)."""
    by_depth, teacher_speed = {}, None
    for r in (m.timing or {}).get("models", []):
        speed = (r.get("speedup") or {}).get("throughput_b32_dev")
        if r.get("model") == "teacher":
            teacher_speed = speed
        elif r.get("depth") is not None:
            by_depth[int(r["depth"])] = speed
    rows = []
    for _, r in summ[summ["column"] == tables.AVERAGE].iterrows():
        teacher = r["role"] == "teacher"
        method = "Teacher" if teacher else tables.METHOD_LABELS[r["strategy"]]
        rows.append({
            "label": f"{method} {r['depth']}L",
            "strategy": None if teacher else r["strategy"],
            "speedup": teacher_speed if teacher else by_depth.get(int(r["depth"])),
            "score": None if r["main"] is None or pd.isna(r["main"]) else 100 * r["main"],
        })
    return pd.DataFrame.from_records(rows, columns=["label", "strategy", "speedup", "score"])


def _authors_blocks(columns: list[tables.Column]) -> list[Block]:
    if not paper.authors_columns(columns):
        return []
    return [Table(paper.authors_table(columns),
                  "The authors' own dev accuracy for these tasks (BERT-base teacher; PKD.md)",
                  ["Retention (% of their teacher) in parentheses. MRPC: accuracy."])]


def _timing_notes(timing: dict[str, Any] | None) -> list[str]:
    if not timing:
        return ["No `timing.json` was found: run the timing stage to fill this table."]
    setup = ", ".join(f"{k} = {timing[k]}" for k in
                      ("device", "threads", "torch", "warmup", "repeats", "task") if k in timing)
    return [
        f"Measured with {setup}.",
        "Latency: one example per call (batch 1), milliseconds, median [p25, p75] over the "
        "repeats; throughput: batch 32, examples per second. `dev lengths` uses the task's "
        "dev examples at their own length, `len 128` pads every example to 128 tokens.",
        "Speed-up vs the teacher: teacher latency / model latency, and model throughput / "
        "teacher throughput. Layer ratio N/M is the speed-up if time were proportional to depth.",
        "All students of one depth (FT, KD, PKD-Skip, PKD-Last) share one architecture, so "
        "one timing row covers them all.",
        "Paper (12-layer BERT-base teacher, same hardware): the 6-layer student is 1.94x and "
        "the 3-layer one 3.73x faster; 109M / 67M / 46M parameters.",
    ]


def _blocks(m: Metrics, config: dict[str, Any], split: str, t1: pd.DataFrame,
            paired: pd.DataFrame, retention: pd.DataFrame, t2: pd.DataFrame, t3: pd.DataFrame,
            figs: dict[str, bytes], columns: list[tables.Column]) -> list[Block]:
    col_notes = _column_notes(m, columns)
    avg_note = (f"Average: mean of the main metric over the {len(columns)} score columns, "
                "per seed and from unrounded values, then mean±std over seeds; `-` where a "
                "column is missing.")
    seed_note = ("Seeds: the number of students (one per seed) behind each cell; a cell is "
                 "their mean ± sample standard deviation (ddof 1), or the single value. The "
                 "teacher is one model.")
    blocks: list[Block] = [
        Heading(TITLE, 1),
        Para(f"Every number in this report is read from the metrics files listed under "
             f"Sources, in `{m.metrics_dir}`. Scores are x100 with one decimal, on the "
             f"`{split}` split."),
        Heading("Configuration"),
        Table(_config_table(config, m.metrics_dir, split), "Run configuration"),
        Heading("Table 1: main results"),
        Table(t1, f"Table 1. Teacher and students ({split}); "
                  "FT = fine-tuned on labels, KD = soft labels, PKD = PKD-Skip", [
            "PKD here is PKD-Skip, the paper's main method; Table 2 compares it with PKD-Last.",
            "Layers: encoder layers of the model (teacher N, student M).", seed_note,
            *col_notes, avg_note,
            "The paper's Table 1 reports GLUE test-server scores; compare these "
            f"{split} scores with the authors' own dev results.",
        ]),
        Heading("Paired differences between methods"),
        Table(paired, f"Paired differences ({split}, main metric, points x100)", [
            stats.METHOD,
            "An interval that contains 0 reads \"no measurable difference\", whatever the "
            "sign of the mean: the methods are then not ordered by this run.",
            "Column `Average`: the per-seed average over all score columns.",
        ]),
        Heading("Retention"),
        Table(retention, f"Retention: student / teacher main {split} metric (%), mean over seeds", [
            "In parentheses: the authors' retention at the same compression ratio N/M "
            "(BERT-base 12L teacher; their 6L students are 2x, their 3L students 4x), from "
            "their own dev results (PKD.md). Their 3-layer PKD is PKD-Skip.",
        ]),
        *_authors_blocks(columns),
        Heading("Table 2: PKD-Skip vs PKD-Last"),
        Table(t2, f"Table 2. Which teacher layers to learn from ({split})", [
            "PKD-Skip matches every (N/M)-th teacher layer; PKD-Last the last M-1 layers "
            "below the top. Cells as in Table 1; their paired difference is in the table "
            "above.", avg_note,
        ]),
        Heading("Table 3: inference cost"),
        Table(t3, "Table 3. Parameters, latency, throughput and speed-up vs the teacher",
              _timing_notes(m.timing)),
        Heading("Figures"),
        Image("fig_metric_vs_depth.png", figs["fig_metric_vs_depth.png"],
              f"Figure 1. {split} main metric vs student depth per method; "
              "dashed: the teacher."),
        Image("fig_train_vs_dev.png", figs["fig_train_vs_dev.png"],
              "Figure 2. Train (solid) vs dev (dashed) accuracy per epoch for KD and "
              "PKD-Skip: the paper's overfitting comparison."),
        Image("fig_accuracy_vs_speedup.png", figs["fig_accuracy_vs_speedup.png"],
              f"Figure 3. {split} main metric averaged over all score columns vs "
              "throughput speed-up (batch 32, dev lengths)."),
    ]
    if m.sweep is not None:
        blocks += [Heading("Hyper-parameter sweep"),
                   Table(m.sweep.fillna("-").astype(str),
                         "Best setting per (task, strategy, depth) on dev (sweep_best.json)")]
    evals = [s for s in m.sources if s.startswith("eval/")]
    trains = [s for s in m.sources if s.startswith("train/")]
    blocks += [
        Heading("Sources"),
        Para(f"All paths are relative to `{m.metrics_dir}`."),
        Bullets([
            f"Tables 1-2, Figures 1 and 3 ({len(evals)} eval files): "
            + ", ".join(f"`{s}`" for s in evals),
            f"Figure 2 ({len(trains)} training histories): "
            + (", ".join(f"`{s}`" for s in trains) or "none found"),
            "Table 3, Figure 3 (speed-up): "
            + ("`timing.json`" if m.timing else "no timing.json found"),
            *(["Sweep table: `sweep_best.json`"] if m.sweep is not None else []),
        ]),
    ]
    return blocks


def build_report(metrics_dir: Path, out_dir: Path, config: dict[str, Any],
                 *, split: str = "dev") -> dict[str, Path]:
    """Render the paper-style report from the metrics files under metrics_dir.

    config: a summary of the run (teacher checkpoint, tasks, depths, preset, data
    source, seed, ...) shown at the top; a "tasks" list, if given, sets the column
    order. split: which eval split the tables score ("dev", or "test" where labelled).
    Returns {file name: path} for every file written into out_dir (see OUTPUTS).
    Raises ValueError, naming the directory, when there are no eval files.
    """
    metrics_dir, out_dir = Path(metrics_dir), Path(out_dir)
    m = load_metrics(metrics_dir)
    tasks = tables.task_order(m.evals, config.get("tasks") if isinstance(config, dict) else None)
    columns = tables.score_columns(m.evals, split, tasks)
    sc = tables.scores(m, columns)
    summ = tables.summary(sc, columns)
    t1 = tables.table1_main(m, summ, columns)
    paired = tables.paired_differences(m, sc, columns)
    teacher_depths = {int(d) for d in m.evals.loc[m.evals["role"] == "teacher", "depth"]}
    retention = paper.retention_table(
        summ, columns, teacher_depths.pop() if len(teacher_depths) == 1 else None)
    t2 = tables.table2_skip_vs_last(m, summ, columns)
    t3 = tables.table3_inference(m.timing)

    mains = set(m.evals["main_metric"])
    metric_label = f"{split} {'accuracy' if mains == {'accuracy'} else 'main metric'} (%)"
    figs = {
        "fig_metric_vs_depth.png": figures.metric_vs_depth(
            summ[summ["column"] != tables.AVERAGE], columns, metric_label),
        "fig_train_vs_dev.png": figures.train_vs_dev(
            m.histories, tasks, tables.student_depths(m.evals)),
        "fig_accuracy_vs_speedup.png": figures.accuracy_vs_speedup(
            _speedup_points(m, summ), f"average {metric_label}"),
    }
    blocks = _blocks(m, dict(config), split, t1, paired, retention, t2, t3, figs, columns)
    contents: dict[str, bytes] = {
        "table1_main.csv": t1.to_csv(index=False).encode(),
        "table1_paired_differences.csv": paired.to_csv(index=False).encode(),
        "table1_retention.csv": retention.to_csv(index=False).encode(),
        "table2_skip_vs_last.csv": t2.to_csv(index=False).encode(),
        "table3_inference.csv": t3.to_csv(index=False).encode(),
        **figs,
        "report.md": to_markdown(blocks).encode(),
        "report.html": to_html(blocks, TITLE).encode(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in OUTPUTS:  # the reports last, after everything they refer to
        _write_atomic(out_dir / name, contents[name])
        written[name] = out_dir / name
    return written
