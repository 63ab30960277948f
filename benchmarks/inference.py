"""Inference speed: the 6-layer teacher vs. 3- and 2-layer students, on real SST-2 dev sentences.

Uses the pipeline's own timing code, pkd.evaluation.timing.time_depths: every model is
built from the default checkpoint's config (hidden 384, 12 heads) with its
depth changed and RANDOM weights (speed does not depend on their values), in
one process, on the same inputs, with the models' repeats interleaved so
background load hits them alike. Workloads:

  batch 1  : latency per example over the first min(64, n) dev sentences;
  batch 32 : throughput over all n dev sentences, padded per batch;
  both again at a fixed length of 128 tokens (the authors' padding).

Reported: median (and quartiles) over repeats after warm-up, speed-up over the
teacher, and beside it the layer ratio N/M (the ideal speed-up if the encoder
layers were all the cost). The paper (BERT-base, 12 layers, same hardware for
all) reports 1.94x for 12 -> 6 layers (N/M = 2) and 3.73x for 12 -> 3 (N/M = 4).
"""
from __future__ import annotations

import argparse

from _common import (
    add_common_args,
    add_smoke_arg,
    data_task,
    glue_dir,
    hardware,
    load_sst2,
    print_banner,
    print_table,
    setup_device,
    write_result,
)
from transformers import DataCollatorWithPadding

from pkd.evaluation.timing import FIXED_LENGTH, time_depths
from pkd.models.families import MODEL_INPUTS
from pkd.models.loading import load_tokenizer, resolve_checkpoint

NAME = "inference"
PAPER = [  # (teacher layers, student layers, reported speed-up, parameters teacher/student)
    (12, 6, 1.94, "109M / 67M"),
    (12, 3, 3.73, "109M / 46M"),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev-samples", type=int, default=256, help="first n SST-2 dev sentences [256]")
    p.add_argument("--depths", default="3,2", help="student depths, comma list [3,2]")
    p.add_argument("--max-seq-length", type=int, default=128, help="truncation of dev sentences [128]")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds of every workload first [1]")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds [5]")
    add_smoke_arg(p, "16 sentences, no warm-up, 1 repeat")
    add_common_args(p, seed=False)
    args = p.parse_args(argv)
    if args.smoke:
        args.dev_samples, args.warmup, args.repeats = 16, 0, 1
    args.depths = [int(d) for d in args.depths.split(",") if d.strip()]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = setup_device(args)
    task = data_task(args)
    tokenizer = load_tokenizer(args.checkpoint)
    dev = load_sst2("dev", args.dev_samples, glue_dir=glue_dir(args), tokenizer=tokenizer,
                    max_seq_length=args.max_seq_length, seed=0, random_subset=False)
    features = [{k: row[k] for k in MODEL_INPUTS if k in row} for row in dev]
    lengths = list(dev["length"])
    hw = hardware(device)
    sizes = {"dev_sentences": len(features), "batch1_sentences": min(len(features), 64),
             "depths": args.depths, "warmup": args.warmup, "repeats": args.repeats,
             "mean_length": round(sum(lengths) / len(lengths), 1), "max_length": max(lengths),
             "fixed_length": FIXED_LENGTH}
    print_banner(NAME, hw, sizes)

    record = time_depths(resolve_checkpoint(args.checkpoint), args.depths, features,
                         DataCollatorWithPadding(tokenizer), task.num_labels,
                         warmup=args.warmup, repeats=args.repeats, device=str(device),
                         pooling="cls")  # BERT-base and the paper: [CLS] and the pooler

    for suffix, title in (("dev", "real SST-2 dev lengths"), ("len128", f"fixed length {FIXED_LENGTH}")):
        rows = []
        for m in record["models"]:
            lat, thr = m[f"latency_b1_{suffix}_ms"], m[f"throughput_b32_{suffix}"]
            rows.append([
                m["model"], m["depth"], f"{m['parameters'] / 1e6:.1f}M",
                lat["median"], f"{lat['p25']:.2f}..{lat['p75']:.2f}", f"{m['speedup'][f'latency_b1_{suffix}']:.2f}x",
                thr["median"], f"{m['speedup'][f'throughput_b32_{suffix}']:.2f}x",
                f"{m['layer_ratio']:.2f}",
            ])
        print_table(
            ["model", "layers", "params", "b1 ms/ex", "b1 p25..p75", "b1 speed-up",
             "b32 ex/s", "b32 speed-up", "N/M"],
            rows, title=f"Inference, {title}, device {record['device']}, {record['threads']} threads",
        )
    print("\npaper (BERT-base teacher, same hardware): "
          + "; ".join(f"{n}->{m} layers (N/M {n / m:.0f}): {s:.2f}x, params {p}" for n, m, s, p in PAPER))
    print("note: here the teacher has 6 layers, so the 3-layer student is the paper's 2x compression "
          "(N/M 2, compare 1.94x); the embeddings (vocab 30522 x 384) are a large share of the parameters "
          "but not of the time.")

    write_result(NAME, {"hardware": hw, "sizes": sizes, "timing": record,
                        "paper": [{"teacher_layers": n, "student_layers": m, "speedup": s, "params": p}
                                  for n, m, s, p in PAPER]}, args.json)


if __name__ == "__main__":
    main()
