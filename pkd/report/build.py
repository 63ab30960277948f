"""build_report: metrics files on disk -> tables (CSV), figures (PNG), report (MD, HTML)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from pkd.io import write_bytes
from pkd.method import strategies as registry
from pkd.report import figures, paper, selection, stats, tables
from pkd.report.load import Metrics, load_metrics
from pkd.report.render import Block, Bullets, Heading, Image, Para, Table, to_html, to_markdown

TITLE = "Patient Knowledge Distillation: reproduction report"
OUTPUTS = (
    "table1_main.csv", "table1_paired_differences.csv", "table1_retention.csv",
    "table2_skip_vs_last.csv", "table3_inference.csv", "table4_deployment.csv",
    "fig_metric_vs_depth.png", "fig_train_vs_dev.png", "fig_accuracy_vs_speedup.png",
    "report.md", "report.html",
)


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


def paper_points() -> list[dict[str, Any]]:
    """The authors' published points (docs/method.md): inference speed-up of their 6- and 3-layer
    students over the 12-layer BERT-base teacher, and their PKD dev accuracy relative to that
    teacher, averaged over the six tasks of their dev table."""
    teacher = paper.AUTHORS_DEV[(None, paper.AUTHORS_TEACHER_DEPTH)]
    points = []
    for depth, speedup in paper.AUTHORS_SPEEDUPS.items():
        student = paper.AUTHORS_DEV[(registry.PKD, depth)]
        score = 100 * sum(student[t] / teacher[t] for t in teacher) / len(teacher)
        points.append({"label": f"Paper PKD {depth}L", "strategy": "paper", "runtime": "paper",
                       "speedup": speedup, "score": score})
    return points


def _speedup_points(m: Metrics, summ: pd.DataFrame, columns: list[tables.Column],
                    projected: Collection[str] = ()) -> pd.DataFrame:
    """One point per deployable variant (PyTorch, ONNX fp32, ONNX int8) of every method and
    depth: throughput speed-up vs the PyTorch teacher and the average main metric (mean over
    seeds) relative to the teacher's (%), plus the authors' published points."""
    speed: dict[tuple[str, int | str], float] = {}
    for r in (m.timing or {}).get("models", []):
        value = (r.get("speedup") or {}).get("throughput_b32_dev")
        runtime = r.get("runtime", tables.PYTORCH)
        if r.get("model") == "teacher":
            speed[(runtime, "teacher")] = value
        elif r.get("depth") is not None:
            speed[(runtime, int(r["depth"]))] = value
    averages = summ[summ["column"] == tables.AVERAGE].set_index("group")
    teacher_avg = averages["main"].get("teacher")
    rows = []

    def add(label, strategy, runtime, speedup, avg, reference=teacher_avg):
        rel = None if avg is None or pd.isna(avg) or not reference else 100 * avg / reference
        rows.append({"label": label, "strategy": strategy, "runtime": runtime, "speedup": speedup, "score": rel})

    for group, r in averages.iterrows():
        teacher = r["role"] == "teacher"
        method = "Teacher" if teacher else registry.label(r["strategy"], r["strategy"] in projected)
        key = "teacher" if teacher else int(r["depth"])
        add(f"{method} {r['depth']}L", None if teacher else r["strategy"], tables.PYTORCH,
            speed.get((tables.PYTORCH, key)), r["main"])
    ex = m.exports
    if ex is not None and not ex.empty:
        tasks = list(dict.fromkeys(c.task for c in columns))
        # Export scores the first dev split of a task (MNLI: matched): the teacher likewise.
        firsts = [next(c for c in columns if c.task == t) for t in tasks]
        teacher_main = summ[summ["group"] == "teacher"].set_index("column")["main"]
        reference = (sum(teacher_main.get(c.label, float("nan")) for c in firsts) / len(firsts)
                     if "teacher" in set(summ["group"]) else None)
        for (strategy, depth, variant), grp in ex[ex["variant"].isin(tables.ONNX_RUNTIMES)].groupby(
                ["strategy", "depth", "variant"], sort=False):
            per_model = []
            for _, model in grp.groupby("model", sort=False):
                mains = model.set_index("task")["main"]
                if all(t in mains and not pd.isna(mains[t]) for t in tasks):
                    per_model.append(sum(mains[t] for t in tasks) / len(tasks))
            if not per_model:
                continue  # an average over a subset of tasks would not be comparable
            add(f"{registry.label(strategy, strategy in projected)} {depth}L", strategy, variant,
                speed.get((variant, int(depth))), sum(per_model) / len(per_model), reference)
    rows += paper_points()
    return pd.DataFrame.from_records(rows, columns=["label", "strategy", "runtime", "speedup", "score"])


def _authors_blocks(columns: list[tables.Column]) -> list[Block]:
    if not paper.authors_columns(columns):
        return []
    return [Table(paper.authors_table(columns),
                  "The authors' own dev accuracy for these tasks (BERT-base teacher; each run's best "
                  "epoch on dev, best grid point on dev; docs/method.md)",
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
        "All students of one depth share one architecture, whatever their strategy, so "
        "one timing row covers them all.",
        "Paper (12-layer BERT-base teacher, same hardware): the 6-layer student is "
        f"{paper.AUTHORS_SPEEDUPS[6]}x and the 3-layer one {paper.AUTHORS_SPEEDUPS[3]}x faster; "
        "109M / 67M / 46M parameters.",
    ]


def _legend(strategies: list[str], sep: str, projected: Collection[str]) -> str:
    """What each strategy trains with, from its registry entry ("KD = soft labels; ...")."""
    return "; ".join(f"{registry.label(s, s in projected)}{sep}{registry.get_strategy(s).description}"
                     for s in strategies if registry.get_strategy(s).description)


def _blocks(m: Metrics, config: dict[str, Any], split: str, t1: pd.DataFrame,
            paired: pd.DataFrame, retention: pd.DataFrame, t2: pd.DataFrame, t3: pd.DataFrame,
            figs: dict[str, bytes], columns: list[tables.Column],
            t4: pd.DataFrame | None = None, selected: str = "last",
            losses: pd.DataFrame | None = None, projected: Collection[str] = ()) -> list[Block]:

    def label(strategy: str) -> str:
        return registry.label(strategy, strategy in projected)

    col_notes = _column_notes(m, columns)
    avg_note = (f"Average: mean of the main metric over the {len(columns)} score columns, "
                "per seed and from unrounded values, then mean±std over seeds; `-` where a "
                "column is missing.")
    seed_note = ("Seeds: the number of students (one per seed) behind each cell; a cell is "
                 "their mean ± sample standard deviation (ddof 1), or the single value. The "
                 "teacher is one model.")
    main, kd = label(registry.PKD), label(registry.KD)
    # Where the epochs are dev-selected, every table built from them says so in its caption.
    scored = split if selected == "last" else f"{split}, best epoch per run: dev-selected, optimistic"
    selection_notes = [] if selected == "last" else [
        f"Selection: {selection.LABELS[selected]}. Each run is scored at the epoch with its best "
        f"{split} main metric, read from its training history; the saved model is the last "
        "epoch's, so these are not the scores of the models that Tables 3-4 time and export. "
        "Best epoch: mean over runs and columns, of the epochs trained."]
    blocks: list[Block] = [
        Heading(TITLE, 1),
        Para(f"Every number in this report is read from the metrics files listed under "
             f"Sources, in `{m.metrics_dir}`. Scores are x100 with one decimal, on the "
             f"`{split}` split, at the {selection.LABELS[selected]}."),
        Heading("Configuration"),
        Table(_config_table(config, m.metrics_dir, split), "Run configuration"),
        Heading("Table 1: main results"),
        Table(t1, f"Table 1. Teacher and students ({scored}); {_legend(tables.table1_strategies(), ' = ', projected)}", [
            *selection_notes,
            f"{main}, the paper's main method, is its Table 1's PKD; Table 2 compares the "
            "layer maps of the patient loss.",
            "Layers: encoder layers of the model (teacher N, student M).", seed_note,
            *col_notes, avg_note,
            "The paper's Table 1 reports GLUE test-server scores; compare these "
            f"{split} scores with the authors' own dev results.",
        ]),
        Heading("Paired differences between methods"),
        Table(paired, f"Paired differences ({scored}, main metric, points x100)", [
            stats.METHOD,
            "An interval that contains 0 reads \"no measurable difference\", whatever the "
            "sign of the mean: the methods are then not ordered by this run.",
            "Column `Average`: the per-seed average over all score columns.",
        ]),
        Heading("Retention"),
        Table(retention, f"Retention: student / teacher main {split} metric (%), mean over seeds ({scored})", [
            "In parentheses: the authors' retention at the same compression ratio N/M "
            "(BERT-base 12L teacher; their 6L students are 2x, their 3L students 4x), from "
            f"their own dev results (docs/method.md). Their 3-layer PKD is {main}.",
        ]),
        *_authors_blocks(columns),
        Heading(f"Table 2: {' vs '.join(map(label, tables.table2_strategies()))}"),
        Table(t2, f"Table 2. Which teacher layers to learn from ({scored})", [
            f"{_legend(tables.table2_strategies(), ': ', projected)}. Cells as in Table 1; their paired "
            "differences are in the table above.", avg_note,
        ]),
        Heading("Table 3: inference cost"),
        Table(t3, "Table 3. Parameters, latency, throughput and speed-up vs the teacher",
              _timing_notes(m.timing)),
        Heading("Table 4: deployment"),
        Table(t4 if t4 is not None else tables.table4_deployment(None),
              f"Table 4. Exported students: {split} main metric (x100) of the PyTorch model, its "
              "ONNX export and the int8 dynamically quantised ONNX model", [
                  "Agreement: share of dev examples on which the ONNX model predicts the same "
                  "label as PyTorch (the export stage fails below export.min_agreement); max abs "
                  "diff: largest logit difference, fp32 ONNX vs PyTorch.",
                  "Sizes: the .onnx files on disk. Timing of these runtimes: Table 3.",
              ] if m.exports is not None else [
                  "No student was exported: set `export.enabled: true` in params.yaml.",
              ]),
        Heading("Figures"),
        Image("fig_metric_vs_depth.png", figs["fig_metric_vs_depth.png"],
              f"Figure 1. {split} main metric vs student depth per method; "
              "dashed: the teacher."),
        Image("fig_train_vs_dev.png", figs["fig_train_vs_dev.png"],
              "Figure 2. Train (solid) vs dev (dashed) accuracy per epoch for "
              f"{', '.join(map(label, figures.figure2_strategies()))}: the paper's "
              f"overfitting comparison of {kd} and {main}."),
        Image("fig_accuracy_vs_speedup.png", figs["fig_accuracy_vs_speedup.png"],
              f"Figure 3. {split} main metric averaged over all score columns, relative to the "
              "teacher's, vs throughput speed-up over the PyTorch fp32 teacher (batch 32, dev "
              "lengths), for every deployable variant: PyTorch fp32 (filled), ONNX Runtime fp32 "
              "(hollow) and int8 (diamond) where exported. Purple stars: the authors' published "
              "PKD points (12-layer BERT-base teacher; speed-ups "
              f"{' and '.join(f'{v}x' for v in paper.AUTHORS_SPEEDUPS.values())}, dev accuracy "
              "relative to the teacher averaged over six GLUE tasks) - theirs, not measured here."),
    ]
    if losses is not None and not losses.empty:
        blocks += [Heading("Loss terms"),
                   Table(losses, "The weighted loss terms of the distilled students in their first and "
                         "last epoch: mean over seeds (share of the training loss, %)", [
                             "L = (1−α)·L_CE + α·L_DS + β·L_PT with each strategy's α and β; a term's "
                             "share shows whether its weight made it negligible or dominant.",
                             "Epoch means of the training batches, from the training histories."])]
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
            "Table 4, Figure 3 (ONNX points): "
            + (", ".join(f"`{s}`" for s in m.sources if s.startswith("export/")) or "none"),
            *(["Sweep table: `sweep_best.json`"] if m.sweep is not None else []),
        ]),
    ]
    return blocks


def build_report(metrics_dir: Path, out_dir: Path, config: dict[str, Any],
                 *, split: str = "dev", selected: str = "last",
                 loss_weights: dict[str, dict[str, float]] | None = None,
                 projected: Collection[str] = ()) -> dict[str, Path]:
    """Render the paper-style report from the metrics files under metrics_dir.

    config: a summary of the run (teacher checkpoint, tasks, depths, preset, data
    source, seed, ...) shown at the top; a "tasks" list, if given, sets the column
    order. split: which eval split the tables score ("dev", or "test" where labelled).
    selected: report.selection, "last" (the saved models) or "best_dev" (each run's best
    dev epoch, pkd.report.selection). loss_weights: {strategy: {"alpha", "beta"}}, for the
    loss-terms table (none without it). projected: the strategies that trained with a learned
    projection (params.yaml's strategies.<name>.projection), labelled "<label> + proj". Returns {file name: path} for every file written into out_dir (see OUTPUTS).
    Raises ValueError, naming the directory, when there are no eval files.
    """
    metrics_dir, out_dir = Path(metrics_dir), Path(out_dir)
    selection.check_selection(selected, split)
    m = load_metrics(metrics_dir)
    epochs = None
    if selected == "best_dev":
        evals, epochs = selection.best_dev(m)
        m = dataclasses.replace(m, evals=evals)
    tasks = tables.task_order(m.evals, config.get("tasks") if isinstance(config, dict) else None)
    columns = tables.score_columns(m.evals, split, tasks)
    sc = tables.scores(m, columns)
    summ = tables.summary(sc, columns)
    t1 = tables.table1_main(m, summ, columns, projected=projected,
                            best_epochs=None if epochs is None else tables.best_epoch_cells(sc, epochs))
    paired = tables.paired_differences(m, sc, columns, projected)
    teacher_depths = {int(d) for d in m.evals.loc[m.evals["role"] == "teacher", "depth"]}
    retention = paper.retention_table(
        summ, columns, teacher_depths.pop() if len(teacher_depths) == 1 else None, projected)
    t2 = tables.table2_skip_vs_last(m, summ, columns, projected)
    t3 = tables.table3_inference(m.timing)
    t4 = tables.table4_deployment(m.exports, projected)

    mains = set(m.evals["main_metric"])
    metric_label = f"{split} {'accuracy' if mains == {'accuracy'} else 'main metric'} (%)"
    figs = {
        "fig_metric_vs_depth.png": figures.metric_vs_depth(
            summ[summ["column"] != tables.AVERAGE], columns, metric_label, projected),
        "fig_train_vs_dev.png": figures.train_vs_dev(
            m.histories, tasks, tables.student_depths(m.evals), projected),
        "fig_accuracy_vs_speedup.png": figures.accuracy_vs_speedup(
            _speedup_points(m, summ, columns, projected), f"average {split} main metric, % of the teacher's",
            projected),
    }
    losses = tables.loss_terms(m.histories, loss_weights, projected) if loss_weights else None
    blocks = _blocks(m, dict(config), split, t1, paired, retention, t2, t3, figs, columns, t4, selected, losses,
                     projected)
    contents: dict[str, bytes] = {
        "table1_main.csv": t1.to_csv(index=False).encode(),
        "table1_paired_differences.csv": paired.to_csv(index=False).encode(),
        "table1_retention.csv": retention.to_csv(index=False).encode(),
        "table2_skip_vs_last.csv": t2.to_csv(index=False).encode(),
        "table3_inference.csv": t3.to_csv(index=False).encode(),
        "table4_deployment.csv": t4.to_csv(index=False).encode(),
        **figs,
        "report.md": to_markdown(blocks).encode(),
        "report.html": to_html(blocks, TITLE).encode(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in OUTPUTS:  # the reports last, after everything they refer to
        write_bytes(out_dir / name, contents[name])
        written[name] = out_dir / name
    return written
