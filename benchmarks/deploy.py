"""What a user ships: the 3-layer int8 ONNX student vs the 6-layer PyTorch fp32 teacher, on real SST-2.

  1. data    : SST-2 from the GLUE TSV files (read at run time): --train-samples
               random training sentences, the full dev set (872), max length 128;
  2. student : a 3-layer student cut from the pre-trained checkpoint (the
               pipeline's init), mean pooling as the embedded default, trained
               with FT (labels only; params.yaml's student batch size, learning
               rate, warm-up, weight decay) for --epochs through
               pkd.training.train.train_model. Quantisation is what is measured here, not
               distillation: FT keeps the run short and needs no teacher;
  3. export  : pkd.deploy.export.export_and_score: ONNX fp32 (checked against PyTorch on
               all of dev) and int8 (ONNX Runtime dynamic quantisation), each scored on dev;
  4. timing  : batch 1 over the first --timing-samples dev sentences at their own
               lengths: the 6-layer teacher in PyTorch fp32 (the checkpoint with a
               classifier head; speed does not depend on the head's weights), and the
               trained student in PyTorch fp32, ONNX fp32 and ONNX int8. Same thread
               count for PyTorch and ONNX Runtime; variants interleaved per repeat;
               medians over repeats after warm-up;
  5. size    : weights on disk: the teacher's model.safetensors vs the .onnx files.

Targets (issue "From student to deployment"): int8 student >= 4x faster than the
teacher at batch 1; int8 dev accuracy within 1 point of the fp32 student; int8
student <= 1/3 of the fp32 teacher on disk.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    ROOT,
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

from pkd.deploy.export import export_and_score
from pkd.models.loading import build_student, build_teacher, load_classifier, load_tokenizer
from pkd.models.onnx import INT8_FILE, ONNX_FILE, OnnxClassifier, size_mb
from pkd.pipeline.params import TrainParams, load_params
from pkd.training.train import train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-samples", type=int, default=2000, help="SST-2 training sentences [2000]")
    parser.add_argument("--epochs", type=float, default=3, help="student epochs [3]")
    parser.add_argument("--depth", type=int, default=3, help="student layers [3]")
    parser.add_argument("--timing-samples", type=int, default=200, help="dev sentences timed at batch 1 [200]")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dev-samples", type=int, default=None, help="first n dev sentences [all 872]")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    add_smoke_arg(parser, "64 train / 64 dev sentences, 1 epoch, 16 timed, 1 repeat")
    add_common_args(parser)
    args = parser.parse_args()
    if args.smoke:
        args.train_samples, args.epochs, args.dev_samples = 64, 1, 64
        args.timing_samples, args.warmup, args.repeats = 16, 0, 1
    device = setup_device(args)
    if device.type != "cpu":
        raise SystemExit("error: ONNX Runtime runs on CPU here; use --device cpu")
    params = load_params(args.params)
    task = data_task(args)
    tokenizer = load_tokenizer(args.checkpoint)
    train = load_sst2("train", args.train_samples, glue_dir=glue_dir(args), tokenizer=tokenizer,
                      max_seq_length=128, seed=args.seed)
    dev = load_sst2("dev", args.dev_samples, glue_dir=glue_dir(args), tokenizer=tokenizer, max_seq_length=128,
                    seed=args.seed, random_subset=False)
    hw = hardware(device)
    print_banner("deploy", hw, {"train": len(train), "dev": len(dev), "timed_b1": args.timing_samples,
                                "depth": args.depth, "epochs": args.epochs, "repeats": args.repeats})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        student = params.student
        tp = TrainParams(epochs=args.epochs, batch_size=student.batch_size, learning_rate=student.learning_rate,
                         warmup_ratio=student.warmup_ratio, weight_decay=student.weight_decay,
                         train_eval_samples=min(300, len(train)))
        history = train_model(
            build_student(args.checkpoint, args.depth, task, "pretrained", seed=args.seed, pooling=params.pooling),
            tokenizer, task=task, train=train, dev=dev, params=tp, learning_rate=student.learning_rate,
            seed=args.seed, checkpoint_dir=tmp / "ckpt", model_out=tmp / "student", history_out=tmp / "history.json",
        )
        train_s = time.perf_counter() - t0
        print(f"student trained: dev accuracy {100 * history[-1]['dev_accuracy']:.2f} ({train_s:.0f}s)", flush=True)
        t0 = time.perf_counter()
        record = export_and_score(tmp / "student", tmp / "onnx", dev, task)
        print(f"exported + scored ({time.perf_counter() - t0:.0f}s): ONNX fp32 agreement "
              f"{100 * record['onnx_fp32']['agreement']:.2f}%, max abs diff {record['onnx_fp32']['max_abs_diff']:.2e}",
              flush=True)

        teacher = build_teacher(args.checkpoint, task, seed=args.seed, pooling=params.pooling).eval()
        teacher.save_pretrained(tmp / "teacher")
        teacher_mb = size_mb(tmp / "teacher" / "model.safetensors")
        threads = torch.get_num_threads()
        runners = {
            "teacher 6L PyTorch fp32": ("torch", teacher),
            f"student {args.depth}L PyTorch fp32": ("torch", load_classifier(tmp / "student").eval()),
            f"student {args.depth}L ONNX fp32": ("onnx", OnnxClassifier(tmp / "onnx" / ONNX_FILE, threads)),
            f"student {args.depth}L ONNX int8": ("onnx", OnnxClassifier(tmp / "onnx" / INT8_FILE, threads)),
        }
        sizes = {name: mb for name, mb in zip(runners, [
            teacher_mb, record["pytorch_fp32"]["size_mb"], record["onnx_fp32"]["size_mb"], record["onnx_int8"]["size_mb"]])}
        collator = DataCollatorWithPadding(tokenizer)
        rows = dev.select(range(min(args.timing_samples, len(dev))))
        batches = [collator([{k: r[k] for k in ("input_ids", "token_type_ids", "attention_mask")}]) for r in rows]
        np_batches = [{k: v.numpy() for k, v in b.items()} for b in batches]
        samples = {name: [] for name in runners}
        with torch.no_grad():
            for repeat in range(args.warmup + args.repeats):
                names = list(runners)
                names = names[repeat % len(names):] + names[: repeat % len(names)]  # rotating order
                for name in names:
                    kind, model = runners[name]
                    start = time.perf_counter()
                    if kind == "torch":
                        for b in batches:
                            model(**b)
                    else:
                        for b in np_batches:
                            model(b)
                    if repeat >= args.warmup:
                        samples[name].append((time.perf_counter() - start) / len(batches) * 1000)

    latency = {name: float(np.median(v)) for name, v in samples.items()}
    teacher_name = "teacher 6L PyTorch fp32"
    acc = {f"student {args.depth}L PyTorch fp32": record["pytorch_fp32"]["accuracy"],
           f"student {args.depth}L ONNX fp32": record["onnx_fp32"]["accuracy"],
           f"student {args.depth}L ONNX int8": record["onnx_int8"]["accuracy"]}
    table = []
    for name in runners:
        lo, hi = np.percentile(samples[name], [25, 75])
        table.append([name, f"{latency[name]:.2f} [{lo:.2f}, {hi:.2f}]", f"{latency[teacher_name] / latency[name]:.2f}x",
                      f"{sizes[name]:.1f}", f"{sizes[name] / sizes[teacher_name]:.2f}",
                      "-" if name not in acc else f"{100 * acc[name]:.2f}"])
    print_table(["model", "latency b1 dev (ms) median [p25, p75]", "speed-up vs teacher", "size (MB)",
                 "size / teacher", "SST-2 dev acc (%)"], table,
                title=f"Batch 1, {len(batches)} SST-2 dev sentences at their own lengths, {threads} thread(s)")
    int8 = f"student {args.depth}L ONNX int8"
    fp32 = f"student {args.depth}L PyTorch fp32"
    speedup = latency[teacher_name] / latency[int8]
    acc_gap = 100 * (acc[fp32] - acc[int8])
    size_ratio = sizes[int8] / sizes[teacher_name]
    checks = [
        ("int8 student vs fp32 teacher, batch 1 speed-up", f"{speedup:.2f}x", ">= 4x", speedup >= 4),
        ("int8 accuracy gap to the fp32 student (points)", f"{acc_gap:+.2f}", "<= 1", abs(acc_gap) <= 1),
        ("int8 student size / fp32 teacher size", f"{size_ratio:.3f}", "<= 0.333", size_ratio <= 1 / 3),
        ("ONNX fp32 vs PyTorch agreement on dev", f"{100 * record['onnx_fp32']['agreement']:.2f}%", ">= 99.9%",
         record["onnx_fp32"]["agreement"] >= 0.999),
    ]
    print_table(["check", "measured", "target", "met"], [[c, m, t, "yes" if ok else "NO"] for c, m, t, ok in checks],
                title="Targets")
    write_result("deploy", {
        "hardware": hw, "args": vars(args), "train_seconds": train_s, "history": history, "export": record,
        "latency_ms": {k: {"median": latency[k], "values": v} for k, v in samples.items()},
        "size_mb": sizes, "speedup_int8_vs_teacher": speedup, "accuracy_gap_points": acc_gap,
        "size_ratio_int8_vs_teacher": size_ratio, "targets_met": {c: ok for c, _, _, ok in checks},
    }, args.json)


if __name__ == "__main__":
    main()
