"""Student distillation step: cached teacher outputs vs. running the teacher in the loop.

Both sides train the same student (same initial weights, same seed) on the same
fixed list of padded batches of real SST-2 training sentences, with the loss
that the distill stage uses for --strategy (default the paper's PKD): its alpha, beta,
T, layer map, KD reduction and normalisation from params.yaml
(`pkd.training.distill.loss_config`), and the sentence state that params.yaml's pooling gives
the student (`--pooling` to override). One step = forward + loss + backward +
gradient clipping + AdamW step, as Trainer runs it:

  cached : the distill stage's step itself: DistillationTrainer.training_step
           (compute_loss reads the teacher logits and layer states by example
           idx from a TeacherCache written by build_teacher_cache and opened by
           load_cache), then Trainer's clipping and optimizer step;
  online : the teacher (eval mode, no grad, output_hidden_states) runs on each
           batch inside the step, as implementations without a cache do; the
           loss is the same pkd_loss with the same LossConfig, the states pooled
           by pkd.method.pooling.layer_states with the same pooling, and backward,
           clipping and optimizer step are the trainer's.

The teacher is the default pre-trained 6-layer checkpoint with a fresh
classifier head, NOT fine-tuned: speed does not depend on the weights' values.
The student is its first --student-depth layers (pkd.models.loading.build_student).

Also measured separately, on the same batches: the teacher forward alone and
the student forward + backward alone (the trainer's training_step), giving the
theoretical limit of the speed-up, 1 + t(teacher forward) / t(student forward +
backward), and the one-off cost of building the cache. Each timed repeat is one
pass over all batches from the initial weights; variants are interleaved in
rotating order; medians over repeats after warm-up steps.
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
from _distill import (
    TrainerSteps,
    add_distill_args,
    batches_of,
    bench_params,
    distill_bench,
    training_rows,
)
from transformers import DataCollatorWithPadding

from pkd.method import strategies
from pkd.method.losses import pkd_loss
from pkd.method.pooling import layer_states, model_pooling
from pkd.models.families import MODEL_INPUTS
from pkd.models.loading import load_tokenizer
from pkd.models.precision import autocast

NAME = "cache_speedup"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-samples", type=int, default=512, help="SST-2 train examples, random subset [512]")
    p.add_argument("--batch-size", type=int, default=32, help="[32]")
    p.add_argument("--student-depth", type=int, default=3, help="student layers M [3]")
    p.add_argument("--max-seq-length", type=int, default=128, help="truncation length [128]")
    p.add_argument("--cache-dtype", choices=["float32", "float16", "bfloat16"], default=None,
                   help="dtype of the cached layer states [--params' teacher.cache_dtype]")
    p.add_argument("--cache-batch-size", type=int, default=None,
                   help="batch size of the cache pass [--params' teacher.cache_batch_size]")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps per variant first [3]")
    p.add_argument("--repeats", type=int, default=5, help="timed passes over all batches per variant [5]")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for both models (GPU runs)")
    add_smoke_arg(p, "64 examples, 1 warm-up step, 1 repeat")
    add_distill_args(p)
    add_common_args(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.train_samples, args.warmup_steps, args.repeats = 64, 1, 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = setup_device(args)
    params = bench_params(args)
    precision = "bf16" if args.bf16 else "fp32"
    cache_dtype = args.cache_dtype or params.teacher.cache_dtype
    task = data_task(args)
    tokenizer = load_tokenizer(args.checkpoint)
    train = load_sst2("train", args.train_samples, glue_dir=glue_dir(args), tokenizer=tokenizer,
                      max_seq_length=args.max_seq_length, seed=args.seed)
    n = len(train)
    hw = hardware(device)
    sizes = {"examples": n, "batch_size": args.batch_size, "student_depth": args.student_depth,
             "max_seq_length": args.max_seq_length, "warmup_steps": args.warmup_steps,
             "repeats": args.repeats, "precision": precision, "strategy": args.strategy,
             "pooling": params.pooling}
    print_banner(NAME, hw, sizes)

    # The fixed list of padded batches (random order, per-batch padding), shared by both sides.
    collator = DataCollatorWithPadding(tokenizer)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)).tolist()
    batches = batches_of(training_rows(train), order, collator, args.batch_size)

    with tempfile.TemporaryDirectory(prefix="pkd-bench-cache-") as tmp:
        bench = distill_bench(args, params, task, train, collator, Path(tmp), depth=args.student_depth,
                              precision=precision, device=device)
        student = bench.steps.trainer.model
        pooling, depth = model_pooling(student), student.config.num_hidden_layers
        seconds = measure(args, bench.steps, bench.teacher, batches, bench.loss, pooling, depth, precision, device)
    teacher_depth, layers, loss = bench.teacher.config.num_hidden_layers, bench.loss.patient_layers, bench.loss
    build_seconds, learning_rate = bench.cache_seconds, bench.learning_rate

    s = {k: stats(v) for k, v in seconds.items()}
    eps = {k: stats([n / x for x in v]) for k, v in seconds.items() if k in ("cached", "online")}
    speedup = eps["cached"]["median"] / eps["online"]["median"]
    t_teacher, t_fb = s["teacher_fwd"]["median"], s["student_fwd_bwd"]["median"]
    limit = 1 + t_teacher / t_fb
    predicted = 1 + t_teacher / s["cached"]["median"]
    saved_per_epoch = s["online"]["median"] - s["cached"]["median"]
    break_even = build_seconds / saved_per_epoch if saved_per_epoch > 0 else None

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
              f"({strategies.label(args.strategy)}, teacher layers {layers}, pooling {pooling}), "
              f"batch {args.batch_size}, device {device}",
    )
    print_table(
        ["component (same batches)", "seconds / pass", "per example ms"],
        [
            ["teacher forward (no grad, hidden states)", t_teacher, 1000 * t_teacher / n],
            ["student forward + loss + backward (training_step, no optimizer)", t_fb, 1000 * t_fb / n],
            [f"cache build, one-off (build_teacher_cache, {cache_dtype})",
             build_seconds, 1000 * build_seconds / n],
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
        "loss": dataclasses.asdict(loss),
        "pooling": pooling,
        "learning_rate": learning_rate,
        "cache_dtype": cache_dtype,
        "examples_per_s": eps,
        "seconds": s,
        "speedup_cached_over_online": speedup,
        "theoretical_limit": limit,
        "predicted_from_cached_step": predicted,
        "cache_build_seconds": build_seconds,
        "cache_break_even_epochs": break_even,
        "teacher_weights": "pre-trained, not fine-tuned (fresh classifier head)",
    }, args.json)


def measure(args, steps: TrainerSteps, teacher, batches, loss, pooling: str, depth: int, precision: str,
            device: torch.device) -> dict[str, list[float]]:
    """Seconds per pass of each variant, per repeat."""
    need_states = loss.patient_layers is not None
    student_layers = list(range(1, depth))  # layers 1..M-1; layer M feeds the classifier

    @torch.no_grad()
    def teacher_targets(features):
        with autocast(precision, device):
            out = teacher(**features, output_hidden_states=need_states)
        states = None
        if need_states:
            states = layer_states(out.hidden_states, features.get("attention_mask"), pooling, loss.patient_layers)
        return out.logits, states

    def online_step(batch):
        model = steps.model
        model.train()
        features = {k: batch[k].to(device, non_blocking=True) for k in MODEL_INPUTS if k in batch}
        out = model(**features, output_hidden_states=need_states)
        logits_t, states_t = teacher_targets(features)
        states_s = None
        if need_states:
            states_s = layer_states(out.hidden_states, features.get("attention_mask"), pooling, student_layers)
        value, _ = pkd_loss(out.logits, batch["labels"].to(device, non_blocking=True), loss,
                            logits_t=logits_t, states_s=states_s, states_t=states_t)
        steps.trainer.accelerator.backward(value)
        steps.update()

    def epoch(step) -> float:
        steps.reset()
        with Timer(device) as t:
            for batch in batches:
                step(batch)
        return t.seconds

    on_device = [{k: b[k].to(device) for k in MODEL_INPUTS if k in b} for b in batches]

    def teacher_forward_epoch() -> float:
        with Timer(device) as t:
            for features in on_device:
                teacher_targets(features)
        return t.seconds

    def student_fwd_bwd_epoch() -> float:
        steps.reset()
        with Timer(device) as t:
            for batch in batches:
                steps.forward_backward(batch)
                steps.model.zero_grad(set_to_none=True)
        return t.seconds

    # Warm-up: a few untimed steps of every variant.
    for step in (steps.step, online_step):
        steps.reset()
        for k in range(args.warmup_steps):
            step(batches[k % len(batches)])
    if args.warmup_steps:
        teacher_forward_epoch()

    variants = {
        "cached": lambda: epoch(steps.step),
        "online": lambda: epoch(online_step),
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
    return seconds


if __name__ == "__main__":
    main()
