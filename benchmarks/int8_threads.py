"""The pipeline's Table 3 at batch 1, at 1 and at 2 threads in one run: int8 3L vs the ONNX fp32 teacher.

The timing stage's own code (pkd.evaluation.timing.time_depths with onnx=True; pooling mean, the default
checkpoint, random heads: speed does not depend on the weights) on the first --examples dev
examples of a built-in task (the default's dev lengths), once per --threads value, in one
process (torch and ONNX Runtime get the same thread count). Printed per thread count:
batch-1 ms per example of the 6-layer teacher (PyTorch fp32, ONNX fp32) and of the 3-layer
student (ONNX fp32, ONNX int8), and the two factors of the int8 speed-up over the ONNX fp32
teacher: depth (ONNX fp32 6L / 3L) times int8 (ONNX fp32 3L / int8 3L).

    python benchmarks/int8_threads.py                 # idle machine, ~5 min
"""
from __future__ import annotations

import argparse

import torch
from _common import (
    DEFAULT_CHECKPOINT,
    add_smoke_arg,
    hardware,
    print_banner,
    print_table,
    write_result,
)
from transformers import DataCollatorWithPadding

from pkd.data import get_task, load_task
from pkd.data.prepare import tokenize
from pkd.evaluation.timing import time_depths
from pkd.models.families import MODEL_INPUTS
from pkd.models.loading import load_tokenizer, resolve_checkpoint

NAME = "int8_threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="builtin_sentiment")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recipe", default="per_channel")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"the teacher [{DEFAULT_CHECKPOINT}]")
    parser.add_argument("--json", help="where to write the JSON record")
    add_smoke_arg(parser, "16 examples, 1 thread, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.examples, args.threads, args.warmup, args.repeats = 16, [1], 0, 1

    task = get_task(args.task)
    tokenizer = load_tokenizer(args.checkpoint)
    splits = tokenize(load_task(task, "builtin", builtin_train_size=8, builtin_dev_size=args.examples),
                      tokenizer, task, 128)
    dev = splits[task.dev_splits[0]]
    features = [{k: row[k] for k in MODEL_INPUTS if k in row} for row in dev]
    hw = hardware()
    print_banner(NAME, hw, {"task": args.task, "examples": len(features), "mean_length": round(
        sum(dev["length"]) / len(dev), 1), "threads": args.threads, "repeats": args.repeats, "recipe": args.recipe})
    rows, records = [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        record = time_depths(resolve_checkpoint(args.checkpoint), [3], features, DataCollatorWithPadding(tokenizer),
                             task.num_labels, warmup=args.warmup, repeats=args.repeats, pooling="mean",
                             device="cpu", onnx=True, int8_recipe=args.recipe)
        ms = {(m["runtime"], m["depth"]): m["latency_b1_dev_ms"]["median"] for m in record["models"]}
        teacher = max(d for _, d in ms)
        depth_factor = ms[("onnx_fp32", teacher)] / ms[("onnx_fp32", 3)]
        int8_factor = ms[("onnx_fp32", 3)] / ms[("onnx_int8", 3)]
        rows.append([threads, ms[("pytorch", teacher)], ms[("onnx_fp32", teacher)], ms[("onnx_fp32", 3)], ms[("onnx_int8", 3)],
                     f"{depth_factor:.2f}x", f"{int8_factor:.2f}x", f"{depth_factor * int8_factor:.2f}x"])
        records.append({"threads": threads, "latency_ms": {f"{r}-{d}": v for (r, d), v in ms.items()},
                        "depth_factor": depth_factor, "int8_factor": int8_factor})
    print_table(["threads", "teacher PyTorch ms", "teacher ONNX ms", "3L ONNX fp32 ms", "3L int8 ms",
                 "depth (teacher/3L)", "int8 (fp32/int8)", "int8 3L vs ONNX teacher"], rows,
                title=f"Batch 1 at {args.task} dev lengths, medians of {args.repeats}")
    write_result(NAME, {"hardware": hw, "args": vars(args), "results": records}, args.json)


if __name__ == "__main__":
    main()
