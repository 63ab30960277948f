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

Loss: the pipeline's PKD loss (alpha 0.7, beta 100, T 10, PKD-Skip layers,
L2-normalised [CLS], KD reduction "mean"), with the teacher's logits and
[CLS] states read by example idx from a TeacherCache filled with RANDOM
values (fixed seed): the loss and gathering cost exactly what the real cache
costs, and no teacher has to be run for a speed benchmark. One step = student
forward + loss + backward + gradient clipping + fused AdamW step (Trainer's
defaults). Each timed repeat is one full epoch from the initial weights;
schemes are interleaved in rotating order; medians over repeats.
"""
from __future__ import annotations

import argparse
import contextlib
import copy

import torch
from _common import (
    Timer,
    add_common_args,
    hardware,
    load_sst2,
    make_optimizer,
    optimizer_step,
    padding_fraction,
    pkd_step_loss,
    print_banner,
    print_table,
    setup_device,
    stats,
    write_result,
)
from transformers import AutoConfig, DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from pkd.data import get_task
from pkd.layers import layer_map
from pkd.models import build_student, load_tokenizer, resolve_checkpoint
from pkd.teacher_cache import MODEL_INPUTS, TeacherCache

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
    p.add_argument("--lr", type=float, default=5e-5, help="[5e-5]")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per scheme first [2]")
    p.add_argument("--repeats", type=int, default=2,
                   help="timed epochs per scheme [2] (a pad-128 epoch of 2000 examples takes "
                        "~2 min on 2 CPU cores; use 5 on a GPU)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU runs)")
    p.add_argument("--quick", action="store_true", help="smoke test: 128 examples, 1 warm-up step, 1 repeat")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.train_samples, args.warmup_steps, args.repeats = 128, 1, 1
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
    task = get_task("sst2")
    tokenizer = load_tokenizer(args.checkpoint)
    train = load_sst2("train", args.train_samples, glue_dir=args.glue_dir, tokenizer=tokenizer,
                      max_seq_length=args.max_seq_length, seed=args.seed)
    n, bs = len(train), args.batch_size
    lengths = list(train["length"])
    hw = hardware(device)
    sizes = {"train_examples": n, "batch_size": bs, "student_depth": args.student_depth,
             "max_seq_length": args.max_seq_length, "schemes": ",".join(args.schemes),
             "warmup_steps": args.warmup_steps, "repeats": args.repeats, "bf16": args.bf16,
             "mean_length": round(sum(lengths) / n, 1), "max_length": max(lengths)}
    print_banner(NAME, hw, sizes)

    columns = ("idx", "label", *MODEL_INPUTS)
    rows = [{("labels" if k == "label" else k): r[k] for k in columns if k in r} for r in train]
    dynamic = DataCollatorWithPadding(tokenizer)
    fixed = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=args.max_seq_length)
    random_order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)).tolist()
    grouped_order = list(LengthGroupedSampler(bs, lengths=lengths,
                                              generator=torch.Generator().manual_seed(args.seed)))

    def batches_of(order, collator):
        return [collator([rows[i] for i in order[s : s + bs]]) for s in range(0, n, bs)]

    batches = {
        "grouped": lambda: batches_of(grouped_order, dynamic),
        "pad128": lambda: batches_of(random_order, fixed),
        "random": lambda: batches_of(random_order, dynamic),
    }
    batches = {s: batches[s]() for s in args.schemes}

    # Random "teacher" targets in a real TeacherCache, looked up by idx as the distill stage does.
    config = AutoConfig.from_pretrained(resolve_checkpoint(args.checkpoint))
    teacher_depth = config.num_hidden_layers
    layers = layer_map("skip", teacher_depth, args.student_depth)
    g = torch.Generator().manual_seed(args.seed)
    idx_sorted = torch.as_tensor(sorted(train["idx"]), dtype=torch.long)
    cache = TeacherCache(idx=idx_sorted, logits=torch.randn(n, task.num_labels, generator=g),
                         cls=torch.randn(n, teacher_depth, config.hidden_size, generator=g),
                         manifest={"random": True})
    alpha, beta, temperature = 0.7, 100.0, 10.0

    torch.manual_seed(args.seed)
    student = build_student(args.checkpoint, args.student_depth, task).to(device)
    init_state = copy.deepcopy(student.state_dict())
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext

    def reset():
        student.load_state_dict(init_state)
        student.train()
        torch.manual_seed(args.seed)
        return make_optimizer(student, args.lr)

    def targets(idx):
        logits_t, cls_t = cache.rows(idx, layers)
        return logits_t.to(device, non_blocking=True), cls_t.to(device, non_blocking=True)

    def step(batch, optimizer):
        inputs = {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUTS if k in batch}
        labels = batch["labels"].to(device, non_blocking=True)
        loss = pkd_step_loss(student, inputs, labels, lambda: targets(batch["idx"]), alpha=alpha, beta=beta,
                             temperature=temperature, autocast=autocast)
        loss.backward()
        optimizer_step(student, optimizer)

    def epoch(scheme) -> float:
        optimizer = reset()
        with Timer(device) as t:
            for batch in batches[scheme]:
                step(batch, optimizer)
        return t.seconds

    for scheme in args.schemes:  # warm-up (pad128's first batch has the longest shapes)
        optimizer = reset()
        for k in range(args.warmup_steps):
            step(batches[scheme][k % len(batches[scheme])], optimizer)

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
              f"PKD loss on random cached targets, device {device}",
    )
    if "grouped" in results:
        print(f"dynamic + length-grouped vs pad-to-{args.max_seq_length}: "
              f"{results['grouped']['speedup_vs_pad128']:.2f}x examples/s; padding "
              f"{100 * results['grouped']['padding_fraction']:.1f}% vs "
              f"{100 * results['pad128']['padding_fraction']:.1f}% of tokens")

    write_result(NAME, {
        "hardware": hw,
        "sizes": sizes,
        "loss": {"alpha": alpha, "beta": beta, "temperature": temperature, "teacher_layers": layers,
                 "teacher_targets": "random values in a TeacherCache, gathered by idx"},
        "schemes": results,
        "sampler": "transformers.trainer_pt_utils.LengthGroupedSampler (Trainer's group_by_length)",
    }, args.json)


if __name__ == "__main__":
    main()
