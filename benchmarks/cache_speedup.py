"""Student distillation step: cached teacher outputs vs. running the teacher in the loop.

Both sides train the same student (same initial weights, same seed) on the same
fixed list of padded batches of real SST-2 training sentences with the PKD
loss (alpha 0.7, beta 100, T 10, PKD-Skip layers, L2-normalised [CLS],
KD reduction "mean"), one step = forward + loss + backward + gradient clipping + fused AdamW step
(what Trainer does with its defaults):

  cached : teacher logits and [CLS] rows gathered by example idx from a
           TeacherCache (pkd.teacher_cache: teacher_outputs -> write_cache ->
           load_cache, exactly as the teacher_cache and distill stages do), the
           step mirroring pkd.distill.DistillationTrainer.compute_loss;
  online : the teacher (eval mode, no grad, output_hidden_states) runs on each
           batch inside the step, as implementations without a cache do.

The teacher is the default pre-trained 6-layer checkpoint with a fresh
classifier head, NOT fine-tuned: speed does not depend on the weights' values.
The student is its first --student-depth layers (pkd.models.build_student).

Also measured separately, on the same batches: the teacher forward alone and
the student forward + backward alone, giving the theoretical limit of the
speed-up, 1 + t(teacher forward) / t(student forward + backward), and the
one-off cost of building the cache. Each timed repeat is one pass over all
batches from the initial weights; variants are interleaved in rotating order;
medians over repeats after warm-up steps.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
from pathlib import Path

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
from transformers import DataCollatorWithPadding

from pkd.data import get_task
from pkd.layers import layer_map
from pkd.models import build_student, build_teacher, load_tokenizer
from pkd.teacher_cache import (
    MODEL_INPUTS,
    dataset_fingerprint,
    load_cache,
    teacher_hash,
    teacher_outputs,
    write_cache,
)

NAME = "cache_speedup"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-samples", type=int, default=512, help="SST-2 train examples, random subset [512]")
    p.add_argument("--batch-size", type=int, default=32, help="[32]")
    p.add_argument("--student-depth", type=int, default=3, help="student layers M [3]")
    p.add_argument("--layer-strategy", choices=["skip", "last"], default="skip", help="[skip]")
    p.add_argument("--max-seq-length", type=int, default=128, help="truncation length [128]")
    p.add_argument("--alpha", type=float, default=0.7, help="[0.7]")
    p.add_argument("--beta", type=float, default=100.0, help="[100]")
    p.add_argument("--temperature", type=float, default=10.0, help="[10]")
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate [5e-5]")
    p.add_argument("--cache-dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="dtype of the cached [CLS] states [float32]")
    p.add_argument("--cache-batch-size", type=int, default=64, help="batch size of the cache pass [64]")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps per variant first [3]")
    p.add_argument("--repeats", type=int, default=5, help="timed passes over all batches per variant [5]")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for both models (GPU runs)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 64 examples, 1 warm-up step, 2 repeats")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.train_samples, args.warmup_steps, args.repeats = 64, 1, 2
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = setup_device(args)
    task = get_task("sst2")
    tokenizer = load_tokenizer(args.checkpoint)
    train = load_sst2("train", args.train_samples, glue_dir=args.glue_dir, tokenizer=tokenizer,
                      max_seq_length=args.max_seq_length, seed=args.seed)
    n = len(train)
    hw = hardware(device)
    sizes = {"examples": n, "batch_size": args.batch_size, "student_depth": args.student_depth,
             "max_seq_length": args.max_seq_length, "warmup_steps": args.warmup_steps,
             "repeats": args.repeats, "bf16": args.bf16}
    print_banner(NAME, hw, sizes)

    # The fixed list of padded batches (random order, per-batch padding), shared by both sides.
    collator = DataCollatorWithPadding(tokenizer)
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n, generator=gen).tolist()
    columns = ("idx", "label", *MODEL_INPUTS)
    rows = [{("labels" if k == "label" else k): r[k] for k in columns if k in r} for r in train]
    batches = [collator([rows[i] for i in order[s : s + args.batch_size]]) for s in range(0, n, args.batch_size)]

    torch.manual_seed(args.seed)
    teacher = build_teacher(args.checkpoint, task).to(device).eval()
    teacher_depth = teacher.config.num_hidden_layers
    layers = layer_map(args.layer_strategy, teacher_depth, args.student_depth)
    student = build_student(args.checkpoint, args.student_depth, task).to(device)
    init_state = copy.deepcopy(student.state_dict())
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext

    # The cache, built exactly as the teacher_cache stage does (one-off cost, timed once,
    # after one warm-up teacher forward).
    with torch.no_grad(), autocast():
        teacher(**{k: v.to(device) for k, v in batches[0].items() if k in MODEL_INPUTS})
    with tempfile.TemporaryDirectory(prefix="pkd-bench-cache-") as tmp:
        teacher.save_pretrained(Path(tmp) / "teacher")
        with Timer(device) as build, autocast():
            outputs = teacher_outputs(teacher, train, collator, args.cache_batch_size)
        manifest = {"teacher_sha256": teacher_hash(Path(tmp) / "teacher"),
                    "data_fingerprint": {"train": dataset_fingerprint(train)}}
        write_cache(Path(tmp) / "cache", {"train": outputs}, manifest, args.cache_dtype)
        cache = load_cache(Path(tmp) / "cache", "train", dataset=train, teacher_dir=Path(tmp) / "teacher")

    def cached_targets(idx, inputs):
        logits_t, cls_t = cache.rows(idx, layers)
        return logits_t.to(device, non_blocking=True), cls_t.to(device, non_blocking=True)

    @torch.no_grad()
    def online_targets(idx, inputs):
        with autocast():
            out = teacher(**inputs, output_hidden_states=True)
        return out.logits.float(), torch.stack([out.hidden_states[i][:, 0] for i in layers], dim=1).float()

    def reset():
        student.load_state_dict(init_state)
        student.train()
        torch.manual_seed(args.seed)  # same dropout masks on both sides
        return make_optimizer(student, args.lr)

    def loss_of(batch, inputs, targets_fn):
        labels = batch["labels"].to(device, non_blocking=True)
        return pkd_step_loss(student, inputs, labels, lambda: targets_fn(batch["idx"], inputs),
                             alpha=args.alpha, beta=args.beta, temperature=args.temperature,
                             autocast=autocast)

    def step(batch, optimizer, targets_fn):
        inputs = {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUTS if k in batch}
        loss_of(batch, inputs, targets_fn).backward()
        optimizer_step(student, optimizer)

    def epoch(targets_fn) -> float:
        optimizer = reset()
        with Timer(device) as t:
            for batch in batches:
                step(batch, optimizer, targets_fn)
        return t.seconds

    # Component timings on pre-moved inputs: teacher forward alone, student forward+backward alone.
    on_device = [{k: b[k].to(device) for k in MODEL_INPUTS if k in b} for b in batches]
    cached_rows = [cached_targets(b["idx"], None) for b in batches]

    def teacher_forward_epoch() -> float:
        with Timer(device) as t:
            for inputs in on_device:
                online_targets(None, inputs)
        return t.seconds

    def student_fwd_bwd_epoch() -> float:
        reset()
        with Timer(device) as t:
            for batch, inputs, rows_t in zip(batches, on_device, cached_rows):
                loss_of(batch, inputs, lambda idx, x, r=rows_t: r).backward()
                student.zero_grad(set_to_none=True)
        return t.seconds

    # Warm-up: a few untimed steps of every variant.
    for fn in (cached_targets, online_targets):
        optimizer = reset()
        for k in range(args.warmup_steps):
            step(batches[k % len(batches)], optimizer, fn)
    if args.warmup_steps:
        teacher_forward_epoch()

    variants = {
        "cached": lambda: epoch(cached_targets),
        "online": lambda: epoch(online_targets),
        "teacher_fwd": teacher_forward_epoch,
        "student_fwd_bwd": student_fwd_bwd_epoch,
    }
    seconds = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            seconds[name].append(variants[name]())
        print(f"repeat {r + 1}/{args.repeats}: "
              + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in seconds.items()), flush=True)

    s = {k: stats(v) for k, v in seconds.items()}
    eps = {k: stats([n / x for x in v]) for k, v in seconds.items() if k in ("cached", "online")}
    speedup = eps["cached"]["median"] / eps["online"]["median"]
    t_teacher, t_fb = s["teacher_fwd"]["median"], s["student_fwd_bwd"]["median"]
    limit = 1 + t_teacher / t_fb
    predicted = 1 + t_teacher / s["cached"]["median"]
    saved_per_epoch = s["online"]["median"] - s["cached"]["median"]
    break_even = build.seconds / saved_per_epoch if saved_per_epoch > 0 else None

    print_table(
        ["measure", "cached teacher", "teacher in loop", "ratio cached/online"],
        [
            ["examples/s (median)", eps["cached"]["median"], eps["online"]["median"], f"{speedup:.2f}x"],
            ["examples/s (min..max)",
             f"{eps['cached']['min']:.1f}..{eps['cached']['max']:.1f}",
             f"{eps['online']['min']:.1f}..{eps['online']['max']:.1f}", ""],
            [f"s per pass ({n} ex.)", s["cached"]["median"], s["online"]["median"], ""],
            ["theoretical limit 1 + t_T/t_S(fwd+bwd)", "", "", f"{limit:.2f}x"],
            ["predicted 1 + t_T/t_step(cached)", "", "", f"{predicted:.2f}x"],
        ],
        title=f"Distillation step, {args.student_depth}-layer student <- {teacher_depth}-layer teacher "
              f"(PKD-{args.layer_strategy} layers {layers}), batch {args.batch_size}, device {device}",
    )
    print_table(
        ["component (same batches)", "seconds / pass", "per example ms"],
        [
            ["teacher forward (no grad, hidden states)", t_teacher, 1000 * t_teacher / n],
            ["student forward + backward (no optimizer)", t_fb, 1000 * t_fb / n],
            [f"cache build, one-off (length-sorted, batch {args.cache_batch_size})",
             build.seconds, 1000 * build.seconds / n],
        ],
    )
    if break_even is not None:
        print(f"cache build pays for itself after {break_even:.2f} epochs "
              "(build time / time saved per epoch)")
    print("note: teacher = pre-trained checkpoint with a fresh head, not fine-tuned "
          "(speed does not depend on weight values)")

    write_result(NAME, {
        "hardware": hw,
        "sizes": sizes,
        "teacher_depth": teacher_depth,
        "teacher_layers": layers,
        "padding_fraction": padding_fraction(batches),
        "loss": {"alpha": args.alpha, "beta": args.beta, "temperature": args.temperature,
                 "kd_reduction": "mean", "normalize_patience": True},
        "examples_per_s": eps,
        "seconds": s,
        "speedup_cached_over_online": speedup,
        "theoretical_limit": limit,
        "predicted_from_cached_step": predicted,
        "cache_build_seconds": build.seconds,
        "cache_break_even_epochs": break_even,
        "teacher_weights": "pre-trained, not fine-tuned (fresh classifier head)",
    }, args.json)


if __name__ == "__main__":
    main()
