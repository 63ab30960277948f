"""The report of a custom task: its own name and main metric, in Table 1 and the paired intervals."""
import json
from pathlib import Path

import pandas as pd

from pkd.report import build_report

SEEDS = (1, 2, 3)
# (strategy, depth) -> macro-F1 per seed; every student's accuracy is 0.90: only macro-F1 separates them
MACRO_F1 = {("ft", 3): (0.60, 0.62, 0.61), ("kd", 3): (0.64, 0.65, 0.66), ("pkd_skip", 3): (0.70, 0.71, 0.69),
            ("pkd_last", 3): (0.66, 0.66, 0.67)}


def record(model, strategy, depth, seed, f1):
    return {"task": "tickets", "model": model, "role": "student" if strategy else "teacher", "strategy": strategy,
            "seed": seed, "depth": depth, "teacher_depth": 6, "main_metric": "macro_f1",
            "metric_names": ["accuracy", "macro_f1"],
            "splits": {"dev": {"accuracy": 0.90 if strategy else f1 + 0.05, "macro_f1": f1, "n": 200}}}


def test_a_custom_task_reports_its_main_metric(tmp_path):
    evals = tmp_path / "metrics/eval/tickets"
    evals.mkdir(parents=True)
    (evals / "teacher.json").write_text(json.dumps(record("teacher", None, 6, 42, 0.80)))
    for (strategy, depth), values in MACRO_F1.items():
        for seed, f1 in zip(SEEDS, values):
            name = f"{strategy}-{depth}-s{seed}"
            (evals / f"{name}.json").write_text(json.dumps(record(name, strategy, depth, seed, f1)))
    paths = build_report(tmp_path / "metrics", tmp_path / "out", {"tasks": ["tickets"]})
    table1 = pd.read_csv(paths["table1_main.csv"], dtype=str)
    assert "tickets" in table1.columns
    teacher = table1[table1["Model"] == "Teacher"].iloc[0]
    assert teacher["tickets"] == "85.0/80.0" and teacher["Average"] == "80.0"  # the average is macro-F1's
    paired = pd.read_csv(paths["table1_paired_differences.csv"], dtype=str)
    skip_ft = paired[(paired["Comparison"] == "PKD-Skip − FT") & (paired["Column"] == "tickets")].iloc[0]
    assert skip_ft["Mean difference"] == "+9.0" and skip_ft["Seeds"] == "3" and skip_ft["Verdict"] == "PKD-Skip > FT"
    assert "tickets" in Path(paths["report.md"]).read_text()
