"""`pkd-teacher-study`: the paper's larger-teacher study as a table, from DVC experiments.

The study (docs/method.md, "The larger-teacher study") compares three set-ups, all with
the same student depth:

    #1  base teacher,  student cut from the base checkpoint
    #2  large teacher, student cut from the base checkpoint
    #3  large teacher, student cut from the large checkpoint

Each set-up is one DVC experiment of the unchanged pipeline, told apart by its
params `teacher.checkpoint` and `student.init_checkpoint` (docs/presets.md,
"The larger-teacher study"). This command reads `dvc exp show --json`, as
`pkd-sweep-table` does, files every evaluation record of every experiment under
its set-up, and writes one row per set-up and method (the paper's KD; PKD where it was run)
plus the two teachers: dev accuracy per task (the main metric where a task has
no accuracy), as mean ± std over seeds where there are several, with the
authors' numbers beside and the runs and files every cell comes from.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pkd.errors import StudyError
from pkd.evaluation.schema import restore_from_exp_show
from pkd.io import write_bytes, write_json
from pkd.method import strategies as registry
from pkd.pipeline import paths
from pkd.pipeline.experiments import load_experiments
from pkd.pipeline.stage import run_stage
from pkd.report.load import eval_rows
from pkd.report.paper import authors_study_dev
from pkd.report.tables import score_columns, task_order

WORKSPACE = "workspace"

ROW_LABELS = {
    "teacher-base": "Teacher, base",
    "teacher-large": "Teacher, large",
    "#1 KD": "#1 base teacher, base-init, KD",
    "#2 KD": "#2 large teacher, base-init, KD",
    "#3 KD": "#3 large teacher, large-init, KD",
    "#3 PKD": "#3 large teacher, large-init, PKD",
    "#1 PKD": "#1 base teacher, base-init, PKD",
    # With a learned projection (strategies.<name>.projection, an extension): the only way PKD
    # runs in #2, whose teacher and student differ in width.
    "#1 PKD + proj": "#1 base teacher, base-init, PKD + proj",
    "#2 PKD + proj": "#2 large teacher, base-init, PKD + proj",
    "#3 PKD + proj": "#3 large teacher, large-init, PKD + proj",
}
SETUPS = {("base", "base"): "#1", ("large", "base"): "#2", ("large", "large"): "#3"}


def authors(row: str, pkd: str = registry.PKD) -> dict[str, float]:
    """The authors' dev accuracy (%) for a row (pkd.report.paper); the PKD rows' are those of
    the strategy `pkd`, where they report it ({} otherwise)."""
    if row.startswith("teacher-"):
        return authors_study_dev("#1" if row == "teacher-base" else "#2", None)
    setup, method = row.split(" ", 1)
    if method not in ("KD", "PKD"):
        return {}  # "+ proj": not the authors' method
    return authors_study_dev(setup, registry.KD if method == "KD" else pkd)


def pkd_strategies() -> list[str]:
    """The strategies a PKD row may show: those with a patient loss."""
    return [s for s in registry.names() if registry.get_strategy(s).patient]


@dataclass(frozen=True)
class Setup:
    """How experiments are recognised: the two checkpoints as params.yaml spells them."""

    base: str
    large: str

    def of(self, params: dict) -> str | None:
        """'#1' / '#2' / '#3' for an experiment's params, or None if it is none of them."""
        teacher = params.get("teacher", {}).get("checkpoint")
        student = params.get("student", {})
        if student.get("init", "pretrained") != "pretrained":
            return None  # a student copied from the fine-tuned teacher is not the study's
        init = student.get("init_checkpoint") or teacher
        names = {self.base: "base", self.large: "large"}
        return SETUPS.get((names.get(teacher), names.get(init)))


def study_values(experiments: list[dict], setup: Setup, pkd: str = registry.PKD, depth: int | None = None) -> pd.DataFrame:
    """One row per (row, column, seed): the value and the run and file it comes from.

    Identical results found under several names (an experiment and the workspace
    it left, a teacher restored from DVC's run-cache) are kept once; different
    values for the same seed are refused, since they would be averaged as seeds.
    """
    records = []
    # Named experiments first, so a duplicate is credited to the experiment, not the workspace.
    for exp in sorted(experiments, key=lambda e: e["name"] == WORKSPACE):
        which = setup.of(exp["params"])
        if which is None:
            continue
        for path, record in exp["metrics"].items():
            if paths.parse_evaluation(path) is None or not record:
                continue
            for row in eval_rows(restore_from_exp_show(record), Path(path), f"{exp['name']}:{path}"):
                knobs = exp["params"].get("strategies", {}).get(row["strategy"]) or {}
                row.update(setup=which, run=exp["name"], projection=bool(knobs.get("projection")),
                           seed=row["seed"] if row["seed"] is not None else exp["params"].get("seed"))
                records.append(row)
    evals = pd.DataFrame.from_records(records)
    if evals.empty:
        raise StudyError(
            f"no experiment has teacher.checkpoint / student.init_checkpoint of the study "
            f"(base '{setup.base}', large '{setup.large}') with evaluation metrics; "
            f"run the set-ups first (docs/presets.md, 'The larger-teacher study')"
        )
    evals["row"] = [_row_key(r, pkd) for r in evals.itertuples()]
    evals = evals[evals["row"].notna()]
    students = evals[evals["role"] != "teacher"]
    depths = sorted(set(students["depth"].astype(int)))
    if depth is None:
        if len(depths) > 1:
            raise StudyError(f"students of several depths {depths}: choose one with --depth")
        depth = depths[0] if depths else None
    evals = evals[(evals["role"] == "teacher") | (evals["depth"] == depth)]
    values = []
    for col in score_columns(evals, "dev", task_order(evals)):
        cell = evals[(evals["task"] == col.task) & (evals["split"] == col.split)]
        for _, grp in cell.groupby(["row", "run", "source"], sort=False):
            names = grp.iloc[0]["metric_names"]
            metric = "accuracy" if "accuracy" in names else grp.iloc[0]["main_metric"]
            chosen = grp[grp["metric"] == metric].iloc[0]
            values.append({"row": chosen["row"], "column": col.label, "metric": metric, "seed": chosen["seed"],
                           "value": float(chosen["value"]), "depth": int(chosen["depth"]),
                           "run": chosen["run"], "source": chosen["source"]})
    values = pd.DataFrame.from_records(values).drop_duplicates(subset=["row", "column", "seed", "value"])
    clash = values[values.duplicated(subset=["row", "column", "seed"], keep=False)]
    if not clash.empty:
        first = clash.iloc[0]
        runs = clash[(clash["row"] == first["row"]) & (clash["column"] == first["column"])]["run"].tolist()
        raise StudyError(
            f"{ROW_LABELS[first['row']]}, {first['column']}, seed {first['seed']}: runs {', '.join(runs)} "
            f"disagree; pass the experiments to use with --exp"
        )
    return values


def _row_key(row, pkd: str) -> str | None:
    if row.role == "teacher":
        return "teacher-large" if row.setup in ("#2", "#3") else "teacher-base"
    if row.strategy == registry.KD:
        return f"{row.setup} KD"
    key = f"{row.setup} PKD" + (" + proj" if row.projection else "")
    if row.strategy == pkd and key in ROW_LABELS:
        return key
    return None


def summarise(values: pd.DataFrame, pkd: str = registry.PKD) -> pd.DataFrame:
    """Mean, std (sample, n - 1) and n over seeds per (row, column), with the runs and files,
    and the authors' number (`paper`) where they report one."""
    out = []
    for (row, column), grp in values.groupby(["row", "column"], sort=False):
        v = grp["value"].tolist()
        std = float(pd.Series(v).std(ddof=1)) if len(v) > 1 else None
        out.append({"row": row, "column": column, "metric": grp.iloc[0]["metric"], "mean": sum(v) / len(v),
                    "std": std, "n": len(v), "seeds": sorted(grp["seed"].tolist()), "depth": int(grp.iloc[0]["depth"]),
                    "runs": list(dict.fromkeys(grp["run"])), "sources": grp["source"].tolist(),
                    "paper": authors(row, pkd).get(column)})
    return pd.DataFrame.from_records(out)


def cell(mean: float, std: float | None, n: int) -> str:
    if std is None or math.isnan(std):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f} (n={n})"


def render(summary: pd.DataFrame, setup: Setup, pkd: str = registry.PKD) -> str:
    columns = list(dict.fromkeys(summary["column"]))
    with_paper = [c for c in columns if summary.loc[summary["column"] == c, "paper"].notna().any()]
    lines = []
    header = ["Row", *[h for c in columns for h in ([c, f"{c} (paper)"] if c in with_paper else [c])]]
    table = []
    for row, label in ROW_LABELS.items():
        sub = summary[summary["row"] == row].set_index("column")
        if sub.empty:
            continue
        rec = [f"{label} ({'/'.join(map(str, sorted(set(sub['depth']))))}L)"]
        for c in columns:
            rec.append(cell(sub.at[c, "mean"], sub.at[c, "std"], sub.at[c, "n"]) if c in sub.index else "-")
            if c in with_paper:
                theirs = sub.at[c, "paper"] if c in sub.index else None
                rec.append("-" if theirs is None or pd.isna(theirs) else f"{theirs:.1f}")
        table.append(rec)
    lines.append(pd.DataFrame(table, columns=header).to_markdown(index=False, disable_numparse=True))
    metrics = ", ".join(f"{c}: {m}" for c, m in dict(zip(summary["column"], summary["metric"])).items())
    note = (
        f"Dev scores (%), {metrics}; mean ± sample std over seeds where there are several (n = seeds). "
        f"PKD rows: {registry.label(pkd)}. Base checkpoint '{setup.base}', large checkpoint '{setup.large}'. "
        "The '(paper)' columns are the authors' dev accuracy (docs/method.md; their PKD is "
        f"{registry.label(registry.PKD)}); "
        "every other number is read from the metrics files listed below."
    )
    lines += [
        "",
        note,
        "",
        "Runs and metrics files:",
        "",
    ]
    for row, label in ROW_LABELS.items():
        sub = summary[summary["row"] == row]
        if sub.empty:
            continue
        runs = list(dict.fromkeys(r for runs in sub["runs"] for r in runs))
        sources = [s for group in sub["sources"] for s in group]
        lines.append(f"- {label}: runs {', '.join(runs)}; files {', '.join(sources)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="bert-base-uncased", help="teacher.checkpoint of the base model")
    parser.add_argument("--large", default="bert-large-uncased", help="teacher.checkpoint of the large model")
    parser.add_argument("--depth", type=int, help="student depth (needed when several were run)")
    parser.add_argument("--pkd", default=registry.PKD, choices=pkd_strategies(), help="the PKD rows' strategy")
    parser.add_argument("--exp", action="append", help="use only these experiments (repeatable)")
    parser.add_argument("--exp-show-json", type=Path, help="read this file instead of running `dvc exp show --json`")
    parser.add_argument("--output", type=Path, default=paths.teacher_study())
    args = parser.parse_args(argv)
    run_stage(lambda: make_study(args))  # a PKDError or a missing file: one line, exit 2


def make_study(args: argparse.Namespace) -> None:
    setup = Setup(args.base, args.large)
    experiments = load_experiments(args.exp_show_json)
    if args.exp:
        experiments = [e for e in experiments if e["name"] in args.exp]
    summary = summarise(study_values(experiments, setup, args.pkd, args.depth), args.pkd)
    text = render(summary, setup, args.pkd)
    write_bytes(args.output, text.encode())
    records = summary.to_dict(orient="records")
    for rec in records:  # JSON has no NaN
        for key in ("std", "paper"):
            rec[key] = None if rec[key] is None or math.isnan(rec[key]) else rec[key]
    write_json(args.output.with_suffix(".json"), records)
    print(text)
    print(f"written to {args.output} and {args.output.with_suffix('.json')}")


if __name__ == "__main__":
    main()
