"""int8 recipes side by side: accuracy kept and batch-1 speed, over the students of a finished run.

Study, 2026-12-03, on the 16 students of the default run at a90e06b (their dev scores are
the current default's), 1 thread.
Result: mean / worst dev loss against the PyTorch fp32 student: default (per-tensor)
+0.58 / +1.70 points, per_channel +0.06 / +0.80, per_channel+matmul_only +0.02 / +0.60,
reduce_range +1.39 / +4.10; the fused graph is slower at dev lengths. With export on
(e229811), Table 4 over the 16 students: mean +0.01, worst +1.0 points.
Decision: `export.int8_recipe: per_channel` is the default (per_channel+matmul_only keeps
the embeddings in fp32 for +0.04 points).

For every student under <run>/models/students (the default run: 16 students of the two
built-in tasks), the script exports ONNX fp32 once (pkd.models.onnx, as the export stage
does), then quantises it with each recipe of pkd.allowed_values.INT8_RECIPES and scores it
on the task's prepared dev split. Per recipe it prints the mean and the worst dev-score
loss against the PyTorch fp32 student (points), the share of identical predictions, and
the batch-1 latency (dev lengths, the first --timing-examples dev examples of the first
task) of the 3-layer PKD-Skip student, with its speed-up over the teacher as ONNX fp32
and as PyTorch fp32. Targets (benchmarks/README.md): mean loss <= 0.5 points, none worse
than 1 point; int8 3L >= 4x faster than the ONNX fp32 teacher at batch 1.

    python benchmarks/studies/int8_recipes.py --run /path/to/a/finished/default/run
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import hardware, print_banner, print_table, write_result
from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorWithPadding

from pkd.allowed_values import INT8_RECIPES
from pkd.data import prepared_task
from pkd.evaluation.evaluate import predict_logits
from pkd.evaluation.metrics import glue_metrics, logits_to_predictions
from pkd.models.loading import load_classifier
from pkd.models.onnx import (
    OnnxClassifier,
    agreement,
    export_onnx,
    onnx_logits,
    quantize_int8,
    size_mb,
)

NAME = "int8_recipes"


def score(task, logits, labels) -> float:
    preds = logits_to_predictions(logits, task.is_regression)
    return 100 * glue_metrics(task.metric_names, preds, labels)[task.main_metric]


def batch1_latency(run, rows, collator, repeats: int) -> float:
    """Median over `repeats` passes of the mean seconds per example, one example per call."""
    batches = [collator([row]) for row in rows]
    run(batches[0])  # warm-up
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            run(batch)
        passes.append((time.perf_counter() - start) / len(batches))
    return statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a repository where the default pipeline has run")
    parser.add_argument("--recipes", nargs="+", default=list(INT8_RECIPES), choices=list(INT8_RECIPES))
    parser.add_argument("--timing-examples", type=int, default=200, help="0: accuracy only (no latency)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--students", default="*/*", help="glob under models/students (e.g. 'builtin_pair/*-3-*')")
    parser.add_argument("--json", help="where to write the JSON record")
    args = parser.parse_args()

    hw = hardware()
    students = sorted(p for p in (args.run / "models/students").glob(args.students) if (p / "config.json").exists())
    print_banner(NAME, hw, {"students": len(students), "recipes": len(args.recipes),
                            "timing_examples": args.timing_examples, "repeats": args.repeats})
    losses: dict[str, list[float]] = {r: [] for r in args.recipes}
    agree: dict[str, list[float]] = {r: [] for r in args.recipes}
    per_student = []
    latency: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="int8-recipes-"))
    timing_task = students[0].parent.name
    for student in students:
        task_name = student.parent.name
        task = prepared_task(task_name, args.run / "data/prepared" / task_name)
        dev = load_from_disk(str(args.run / "data/prepared" / task_name))[task.dev_splits[0]]
        labels = np.asarray(dev["label"])
        collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(student)))
        model = load_classifier(student).eval()
        reference = predict_logits(model, dev, collator, 64)
        fp32_score = score(task, reference, labels)
        fp32 = export_onnx(model, work / f"{task_name}-{student.name}.onnx")
        row = {"task": task_name, "student": student.name, "pytorch_fp32": fp32_score}
        for recipe in args.recipes:
            int8 = quantize_int8(fp32, work / f"{task_name}-{student.name}-{recipe}.onnx", recipe)
            logits = onnx_logits(OnnxClassifier(int8), dev, collator)
            row[recipe] = score(task, logits, labels)
            losses[recipe].append(fp32_score - row[recipe])
            agree[recipe].append(agreement(reference, logits, task.is_regression)["agreement"])
            if args.timing_examples and task_name == timing_task and student.name.startswith("pkd_skip-3-"):
                rows = [{k: dev[i][k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in dev[i]}
                        for i in range(min(args.timing_examples, len(dev)))]
                session = OnnxClassifier(int8)
                latency[recipe] = batch1_latency(lambda b, s=session: s({k: v.numpy() for k, v in b.items()}), rows,
                                                 collator, args.repeats)
                latency[f"{recipe} size_mb"] = size_mb(int8)
        per_student.append(row)
        print(f"  {task_name}/{student.name}: fp32 {fp32_score:.1f}; "
              + ", ".join(f"{r} {row[r]:.1f}" for r in args.recipes), flush=True)

    if args.timing_examples:
        teacher_latency(args, timing_task, work, latency)
    table = []
    for recipe in args.recipes:
        worst = int(np.argmax(losses[recipe]))
        ms = latency.get(recipe)
        table.append([
            recipe, f"{statistics.mean(losses[recipe]):+.2f}", f"{losses[recipe][worst]:+.2f}",
            f"{per_student[worst]['task']}/{per_student[worst]['student']}",
            f"{100 * statistics.mean(agree[recipe]):.1f}",
            f"{1000 * ms:.2f}" if ms else "-",
            f"{latency['teacher onnx fp32'] / ms:.2f}x" if ms else "-",
            f"{latency['teacher pytorch fp32'] / ms:.2f}x" if ms else "-",
            f"{latency[f'{recipe} size_mb']:.1f}" if ms else "-",
        ])
    teachers = (f"teacher: ONNX fp32 {1000 * latency['teacher onnx fp32']:.2f} ms, PyTorch fp32 "
                f"{1000 * latency['teacher pytorch fp32']:.2f} ms per example" if args.timing_examples else "no timing")
    print_table(["recipe", "mean loss (pts)", "worst loss", "worst student", "agreement %",
                 "3L int8 ms/example", "vs ONNX fp32 teacher", "vs PyTorch teacher", "3L int8 MB"], table,
                title=f"int8 recipes over {len(students)} students (loss = PyTorch fp32 dev score - int8 dev score); "
                      f"batch-1 latency on {timing_task} dev, first {args.timing_examples} examples, "
                      f"median of {args.repeats}; {teachers}")
    write_result(NAME, {"hardware": hw, "per_student": per_student, "latency_s": latency,
                        "mean_loss": {r: statistics.mean(v) for r, v in losses.items()},
                        "max_loss": {r: max(v) for r, v in losses.items()}}, args.json)


def teacher_latency(args, timing_task: str, work: Path, latency: dict) -> None:
    """Batch-1 latency of the task's teacher, PyTorch fp32 and ONNX fp32, into `latency`."""
    teacher_dir = args.run / "models/teacher" / timing_task
    task = prepared_task(timing_task, args.run / "data/prepared" / timing_task)
    dev = load_from_disk(str(args.run / "data/prepared" / timing_task))[task.dev_splits[0]]
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(teacher_dir)))
    rows = [{k: dev[i][k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in dev[i]}
            for i in range(min(args.timing_examples, len(dev)))]
    teacher = load_classifier(teacher_dir).eval()
    teacher_onnx = OnnxClassifier(export_onnx(teacher, work / "teacher.onnx"))
    with torch.inference_mode():
        latency["teacher pytorch fp32"] = batch1_latency(lambda b: teacher(**b), rows, collator, args.repeats)
    latency["teacher onnx fp32"] = batch1_latency(lambda b: teacher_onnx({k: v.numpy() for k, v in b.items()}), rows,
                                                  collator, args.repeats)


if __name__ == "__main__":
    main()
