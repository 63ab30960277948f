"""The authors' own results (docs/method.md, "Anchor numbers"), for side-by-side tables.

Dev accuracy from result/glue/result_summary/*_mean.csv in the authors' repository
(MRPC and QQP: accuracy, not F1): their BERT-base (12-layer) teacher and its
students, whose 3-layer PKD row is PKD-Skip (no 3-layer PKD-Last is reported), and
the larger-teacher study's BERT-large set-ups. The report and `pkd-teacher-study`
read them here only.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from pkd.method import strategies as registry
from pkd.report.tables import AVERAGE, MISSING, Column

AUTHORS_TEACHER_DEPTH = 12
# (strategy or None for the teacher, depth) -> {column label: dev accuracy %}
AUTHORS_DEV: dict[tuple[str | None, int], dict[str, float]] = {
    (None, 12):       {"sst2": 92.6, "mrpc": 86.9, "rte": 69.4, "qnli": 91.1, "mnli-m": 83.5, "qqp": 90.9},
    ("ft", 6):        {"sst2": 89.7, "mrpc": 82.2, "rte": 66.1, "qnli": 87.4, "mnli-m": 80.2, "qqp": 90.1},
    ("kd", 6):        {"sst2": 90.8, "mrpc": 82.8, "rte": 67.5, "qnli": 88.7, "mnli-m": 80.8, "qqp": 90.5},
    ("pkd_skip", 6):  {"sst2": 91.1, "mrpc": 83.5, "rte": 68.2, "qnli": 89.7, "mnli-m": 82.2, "qqp": 90.8},
    ("pkd_last", 6):  {"sst2": 90.5, "mrpc": 82.8, "rte": 66.8, "qnli": 89.0, "mnli-m": 81.5, "qqp": 90.8},
    ("ft", 3):        {"sst2": 87.5, "mrpc": 75.2, "rte": 58.3, "qnli": 84.2, "mnli-m": 74.9, "qqp": 88.9},
    ("kd", 3):        {"sst2": 87.5, "mrpc": 75.3, "rte": 59.4, "qnli": 84.6, "mnli-m": 75.6, "qqp": 89.4},
    ("pkd_skip", 3):  {"sst2": 88.1, "mrpc": 75.3, "rte": 62.1, "qnli": 85.6, "mnli-m": 77.6, "qqp": 89.5},
}
# Inference speed-up of their students over the BERT-base teacher, by student depth.
AUTHORS_SPEEDUPS = {6: 1.94, 3: 3.73}

# The larger-teacher study (docs/method.md): 6-layer students of a 24-layer BERT-large
# teacher, cut from BERT-base (set-up #2) or BERT-large (#3); set-up #1 (BERT-base teacher
# and students) is AUTHORS_DEV's 12-layer teacher and 6-layer rows.
AUTHORS_STUDY_DEPTH = 6
AUTHORS_LARGE_TEACHER_DEV = {"sst2": 92.8, "mrpc": 85.5, "rte": 71.5, "qnli": 92.1, "mnli-m": 85.9, "qqp": 91.5}
AUTHORS_LARGE_TEACHER_STUDENTS_DEV: dict[tuple[str, str], dict[str, float]] = {  # (set-up, strategy)
    ("#2", "kd"):       {"sst2": 91.0, "mrpc": 84.1, "rte": 66.4, "qnli": 87.4, "mnli-m": 80.8, "qqp": 90.3},
    ("#3", "kd"):       {"sst2": 89.2, "mrpc": 75.2, "rte": 58.1, "qnli": 84.3, "mnli-m": 75.8, "qqp": 88.0},
    ("#3", "pkd_skip"): {"sst2": 89.4, "mrpc": 71.6, "rte": 59.2, "qnli": 83.5, "mnli-m": 77.1, "qqp": 89.5},
}


def authors_study_dev(setup: str, strategy: str | None) -> dict[str, float]:
    """The authors' dev accuracy of one row of the larger-teacher study: the teacher of
    set-up '#1' / '#2' / '#3' (strategy None) or its 6-layer student; {} where they report none."""
    if strategy is None:
        return AUTHORS_DEV[(None, AUTHORS_TEACHER_DEPTH)] if setup == "#1" else AUTHORS_LARGE_TEACHER_DEV
    if setup == "#1":
        return AUTHORS_DEV.get((strategy, AUTHORS_STUDY_DEPTH), {})
    return AUTHORS_LARGE_TEACHER_STUDENTS_DEV.get((setup, strategy), {})


def authors_columns(columns: list[Column]) -> list[str]:
    """The run's score columns for which the authors report a dev number."""
    reported = AUTHORS_DEV[(None, AUTHORS_TEACHER_DEPTH)]
    return [c.label for c in columns if c.label in reported]


def authors_table(columns: list[Column]) -> pd.DataFrame:
    """The authors' dev accuracy for the run's tasks, retention (% of their teacher) in
    parentheses."""
    labels = authors_columns(columns)
    teacher = AUTHORS_DEV[(None, AUTHORS_TEACHER_DEPTH)]
    records = []
    for (strategy, depth), scores in AUTHORS_DEV.items():
        rec = {"Model": "Teacher" if strategy is None else registry.label(strategy),
               "Layers": str(depth)}
        for label in labels:
            value = scores[label]
            rec[label] = f"{value:.1f}" if strategy is None else f"{value:.1f} ({100 * value / teacher[label]:.1f}%)"
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=["Model", "Layers", *labels])


def retention_table(summ: pd.DataFrame, columns: list[Column], teacher_depth: int | None,
                    projected: Collection[str] = ()) -> pd.DataFrame:
    """Per student (method, depth): mean main metric over seeds / the teacher's, in %.
    Beside it, the authors' retention at the same compression ratio N/M (their 12 -> 6
    is 2x, 12 -> 3 is 4x), where they report one."""
    mains = summ.set_index(["group", "column"])["main"]
    labels = [c.label for c in columns] + [AVERAGE]
    authors_teacher = AUTHORS_DEV[(None, AUTHORS_TEACHER_DEPTH)]
    students = summ[summ["role"] != "teacher"][["group", "strategy", "depth"]].drop_duplicates()
    records = []
    for _, s in students.sort_values(["depth", "strategy"], ascending=[False, True]).iterrows():
        ratio = teacher_depth / s["depth"] if teacher_depth else None
        authors_depth = AUTHORS_TEACHER_DEPTH / ratio if ratio else None
        theirs = AUTHORS_DEV.get((s["strategy"], authors_depth)) if authors_depth else None
        rec = {"Model": registry.label(s["strategy"], s["strategy"] in projected), "Layers": str(s["depth"]),
               "N/M": MISSING if ratio is None else f"{ratio:g}x"}
        for label in labels:
            ours, teacher = mains.get((s["group"], label)), mains.get(("teacher", label))
            cell = MISSING
            if ours is not None and teacher and not pd.isna(ours):
                cell = f"{100 * ours / teacher:.1f}"
            if theirs and label in theirs:
                cell += f" ({100 * theirs[label] / authors_teacher[label]:.1f})"
            rec[label] = cell
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=["Model", "Layers", "N/M", *labels])
