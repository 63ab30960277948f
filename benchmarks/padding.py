"""One student distillation epoch on real SST-2: dynamic padding + length grouping vs. pad-to-128.

Schemes (all with batch 32, truncation at --max-seq-length, the same student
initial weights, the same seed and the same loss):

  grouped : per-batch padding over batches from transformers' LengthGroupedSampler
            (what the pipeline's Trainer does: train_sampling_strategy="group_by_length");
  pad128  : every example padded to --max-seq-length (128), random batches
            (the authors' code pads to 128; they never shuffle, which does not
            change the speed);
  random  : per-batch padding over random batches, no length grouping
            (opt-in via --schemes, shows what the grouping alone adds).

Training set: a random subsample of SST-2 train (default 2000 examples, seed
--seed) read from the GLUE TSV files through pkd.data.load_task(source="glue_dir").

Step: the distill stage's own, for --strategy (default the paper's PKD, its loss from
params.yaml via pkd.training.distill.loss_config, the student's pooling from params.yaml or
--pooling): DistillationTrainer.training_step (forward, compute_loss reading
the teacher's logits and layer states by example idx from a TeacherCache,
backward), then Trainer's gradient clipping and AdamW step. The cache is
written once, untimed, by build_teacher_cache from the default pre-trained
checkpoint with a fresh head (not fine-tuned: speed does not depend on the
weights' values) and opened by load_cache. Each timed repeat is one full epoch
from the initial weights; schemes are interleaved in rotating order; medians
over repeats.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch
from _common import (
    Timer,
    add_common_args,
    add_smoke_arg,
    data_task,
    glue_dir,
    hardware,
    load_sst2,
    padding_fraction,
    print_banner,
    print_table,
    setup_device,
    stats,
    write_result,
)
from _distill import add_distill_args, batches_of, bench_params, distill_bench, training_rows
from transformers import DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from pkd.method.pooling import model_pooling
from pkd.models.loading import load_tokenizer

NAME = "padding"
SCHEMES = ("grouped", "pad128", "random")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-samples", type=int, default=2000, help="SST-2 train examples, random subset [2000]")
    p.add_argument("--batch-size", type=int, default=32, help="[32]")
    p.add_argument("--student-depth", type=int, default=3, help="student layers M [3]")
    p.add_argument("--max-seq-length", type=int, default=128,
                   help="truncation length and the fixed padding length of pad128 [128]")
    p.add_argument("--schemes", default="grouped,pad128",
                   help=f"comma list from {','.join(SCHEMES)} [grouped,pad128]")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per scheme first [2]")
    p.add_argument("--repeats", type=int, default=2,
                   help="timed epochs per scheme [2] (a pad-128 epoch of 2000 examples takes "
                        "~2 min on 2 CPU cores; use 5 on a GPU)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU runs)")
    add_smoke_arg(p, "64 examples, 1 warm-up step, 1 repeat")
    add_distill_args(p)
    add_common_args(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.train_samples, args.warmup_steps, args.repeats = 64, 1, 1
    args.schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    for s in args.schemes:
        if s not in SCHEMES:
            p.error(f"--schemes: unknown scheme '{s}'; allowed: {', '.join(SCHEMES)}")
    if "pad128" not in args.schemes:
        p.error("--schemes must include pad128 (the reference of the ratios)")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = setup_device(args)
    task = data_task(args)
    tokenizer = load_tokenizer(args.checkpoint)
    train = load_sst2("train", args.train_samples, glue_dir=glue_dir(args), tokenizer=tokenizer,
                      max_seq_length=args.max_seq_length, seed=args.seed)
    n, bs = len(train), args.batch_size
    params = bench_params(args)
    precision = "bf16" if args.bf16 else "fp32"
    lengths = list(train["length"])
    hw = hardware(device)
    sizes = {"train_examples": n, "batch_size": bs, "student_depth": args.student_depth,
             "max_seq_length": args.max_seq_length, "schemes": ",".join(args.schemes),
             "warmup_steps": args.warmup_steps, "repeats": args.repeats, "precision": precision,
             "strategy": args.strategy, "pooling": params.pooling,
             "mean_length": round(sum(lengths) / n, 1), "max_length": max(lengths)}
    print_banner(NAME, hw, sizes)

    rows = training_rows(train)
    dynamic = DataCollatorWithPadding(tokenizer)
    fixed = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=args.max_seq_length)
    random_order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)).tolist()
    grouped_order = list(LengthGroupedSampler(bs, lengths=lengths,
                                              generator=torch.Generator().manual_seed(args.seed)))
    orders = {"grouped": (grouped_order, dynamic), "pad128": (random_order, fixed), "random": (random_order, dynamic)}
    batches = {s: batches_of(rows, *orders[s], bs) for s in args.schemes}

    with tempfile.TemporaryDirectory(prefix="pkd-bench-padding-") as tmp:
        bench = distill_bench(args, params, task, train, dynamic, Path(tmp), depth=args.student_depth,
                              precision=precision, device=device)
        steps, loss, learning_rate = bench.steps, bench.loss, bench.learning_rate
        student = steps.trainer.model

        def epoch(scheme) -> float:
            steps.reset()
            with Timer(device) as t:
                for batch in batches[scheme]:
                    steps.step(batch)
            return t.seconds

        for scheme in args.schemes:  # warm-up (pad128's first batch has the longest shapes)
            steps.reset()
            for k in range(args.warmup_steps):
                steps.step(batches[scheme][k % len(batches[scheme])])

        seconds = {s: [] for s in args.schemes}
        for r in range(args.repeats):
            k = r % len(args.schemes)
            for scheme in args.schemes[k:] + args.schemes[:k]:
                seconds[scheme].append(epoch(scheme))
                print(f"repeat {r + 1}/{args.repeats}: {scheme} epoch {seconds[scheme][-1]:.2f}s", flush=True)

    real_tokens = sum(lengths)
    results = {}
    for scheme in args.schemes:
        total = sum(b["attention_mask"].numel() for b in batches[scheme])
        results[scheme] = {
            "seconds_per_epoch": stats(seconds[scheme]),
            "examples_per_s": stats([n / x for x in seconds[scheme]]),
            "batches": len(batches[scheme]),
            "tokens_per_epoch_padded": total,
            "tokens_per_epoch_real": real_tokens,
            "padding_fraction": padding_fraction(batches[scheme]),
        }
    ref = results["pad128"]["examples_per_s"]["median"]
    labels = {"grouped": "dynamic + length-grouped", "pad128": f"pad to {args.max_seq_length}",
              "random": "dynamic, random batches"}
    table = []
    for scheme in args.schemes:
        res = results[scheme]
        eps = res["examples_per_s"]
        res["speedup_vs_pad128"] = eps["median"] / ref
        table.append([labels[scheme], eps["median"], f"{eps['min']:.1f}..{eps['max']:.1f}",
                      res["seconds_per_epoch"]["median"], res["tokens_per_epoch_padded"],
                      f"{100 * res['padding_fraction']:.1f}%", f"{res['speedup_vs_pad128']:.2f}x"])
    print_table(
        ["scheme", "examples/s", "min..max", "s/epoch", "tokens/epoch", "padding", "ratio vs pad"],
        table,
        title=f"Distillation epoch, {n} SST-2 train examples, batch {bs}, {args.student_depth}-layer student, "
              f"{args.strategy} step (DistillationTrainer, cached teacher, pooling {model_pooling(student)}), device {device}",
    )
    if "grouped" in results:
        print(f"dynamic + length-grouped vs pad-to-{args.max_seq_length}: "
              f"{results['grouped']['speedup_vs_pad128']:.2f}x examples/s; padding "
              f"{100 * results['grouped']['padding_fraction']:.1f}% vs "
              f"{100 * results['pad128']['padding_fraction']:.1f}% of tokens")

    write_result(NAME, {
        "hardware": hw,
        "sizes": sizes,
        "loss": dataclasses.asdict(loss),
        "learning_rate": learning_rate,
        "teacher_targets": "build_teacher_cache of the pre-trained checkpoint (fresh head), read by idx",
        "schemes": results,
        "sampler": "transformers.trainer_pt_utils.LengthGroupedSampler (Trainer's group_by_length)",
    }, args.json)


if __name__ == "__main__":
    main()
