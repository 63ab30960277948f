"""Dev accuracy on real SST-2: teacher, then 3-layer FT / KD / PKD-Skip / PKD-Last students.

The pipeline's own pieces, end to end, on the glue_dir source (SST-2 from the
GLUE TSV files, read at run time):

  1. data   : pkd.data.load_task("sst2", "glue_dir"); the first --train-samples
              training examples (as data.max_train_samples does), the full dev
              set (872) unless --dev-samples; pkd.prepare.tokenize with
              max_seq_length 64 (SST-2 sentences are short with this tokenizer:
              dev mean 25, max 55 tokens; train mean 13, max 66, and only 4 of the
              67,349 train phrases, none of the first 4000, exceed 64);
  2. teacher: the default pre-trained 6-layer checkpoint fine-tuned with
              pkd.training.train_model (Trainer, length-grouped shuffled batches);
  3. cache  : pkd.teacher_cache.teacher_outputs -> write_cache -> load_cache;
  4. students of --depth layers, one per strategy and seed, initialised as
              params.yaml's student.init says (pre-trained: the paper's choice).

Hyper-parameters come from params.yaml (--params): teacher/student batch size,
learning rate, warm-up, weight decay, KD reduction, [CLS] normalisation and
each strategy's alpha, beta, temperature and learning rate; only the epochs
come from flags. Nothing is tuned here.

Reported per model: mean +- sample std of dev accuracy over seeds, retention =
student / teacher, and the authors' dev numbers (PKD.md) with their retention.
Our 6-layer teacher -> 3-layer student is a 2x compression like the paper's
12 -> 6, and the same depth as the paper's 3-layer students: both columns are
shown. The ordering PKD > KD > FT is checked on the means and printed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    add_common_args,
    hardware,
    print_banner,
    print_table,
    setup_device,
    write_result,
)
from datasets import DatasetDict
from transformers import DataCollatorWithPadding, set_seed
from transformers.utils import logging as hf_logging

from pkd.config import STRATEGY_LAYER_MAP, TrainParams, load_params
from pkd.data import get_task, load_task
from pkd.layers import layer_map
from pkd.models import build_student, build_teacher, checkpoint_depth, load_classifier, load_tokenizer
from pkd.prepare import subsample, tokenize
from pkd.teacher_cache import (
    dataset_fingerprint,
    load_cache,
    teacher_hash,
    teacher_outputs,
    write_cache,
)
from pkd.training import train_model

NAME = "accuracy_sst2"
STRATEGIES = ("ft", "kd", "pkd_skip", "pkd_last")
LABELS = {"teacher": "teacher", "ft": "FT", "kd": "KD", "pkd_skip": "PKD-Skip", "pkd_last": "PKD-Last"}
# The authors' dev accuracy on SST-2 (PKD.md, from their result_summary/*_mean.csv).
PAPER_TEACHER = 92.6
PAPER_6L = {"ft": 89.7, "kd": 90.8, "pkd_skip": 91.1, "pkd_last": 90.5}
PAPER_3L = {"ft": 87.5, "kd": 87.5, "pkd_skip": 88.1, "pkd_last": None}  # "3L PKD" listed once


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="student seeds (>= 2 for a std) [0 1]")
    p.add_argument("--teacher-seed", type=int, default=None, help="seed of the one teacher [first of --seeds]")
    p.add_argument("--teacher-per-seed", action="store_true",
                   help="fine-tune a teacher (and cache) per seed; students of seed s learn from teacher s")
    p.add_argument("--train-samples", type=int, default=4000,
                   help="first n SST-2 train examples; 0 = all 67349 [4000]")
    p.add_argument("--dev-samples", type=int, default=0, help="first n dev examples; 0 = all 872 [0]")
    p.add_argument("--max-seq-length", type=int, default=64, help="[64]")
    p.add_argument("--teacher-epochs", type=float, default=2, help="[2]")
    p.add_argument("--student-epochs", type=float, default=3, help="[3]")
    p.add_argument("--depth", type=int, default=3, help="student layers [3]")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES,
                   help="[ft kd pkd_skip pkd_last]")
    p.add_argument("--train-eval-samples", type=int, default=256,
                   help="train examples scored each epoch for the train-accuracy curve [256]")
    p.add_argument("--params", default=str(ROOT / "params.yaml"), help="hyper-parameters [params.yaml]")
    p.add_argument("--out-dir", default=None,
                   help="keep models, checkpoints and histories here (must be empty or absent); "
                        "default: a temporary directory, deleted at the end")
    p.add_argument("--verbose", action="store_true",
                   help="show Trainer's progress bars and logs (default: they go to train.log in the run directory)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 96 train / 64 dev examples, 1 epoch each, seeds 0 1")
    add_common_args(p, seed=False)
    args = p.parse_args(argv)
    if args.quick:
        args.train_samples, args.dev_samples, args.teacher_epochs, args.student_epochs = 96, 64, 1, 1
        args.train_eval_samples = 32
    if args.teacher_seed is None:
        args.teacher_seed = args.seeds[0]
    return args


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def pm(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} +- {100 * std:.2f}" if std is not None else f"{100 * mean:.2f}"


def main(argv=None) -> None:
    args = parse_args(argv)
    device = setup_device(args)
    if device.type not in ("cpu", "cuda"):
        raise SystemExit("--device: Trainer picks the accelerator itself; use cpu or cuda")
    params = load_params(args.params)
    task = get_task("sst2")
    tokenizer = load_tokenizer(args.checkpoint)
    raw = load_task(task, "glue_dir", glue_dir=args.glue_dir)
    raw = DatasetDict({"train": raw["train"], "dev": raw["dev"]})
    raw = subsample(raw, args.train_samples or None, args.dev_samples or None)
    splits = tokenize(raw, tokenizer, task, args.max_seq_length)
    train, dev = splits["train"], splits["dev"]
    truncated = sum(1 for n in dev["length"] if n >= args.max_seq_length)
    hw = hardware(device)
    sizes = {"train_examples": len(train), "dev_examples": len(dev), "max_seq_length": args.max_seq_length,
             "dev_truncated": truncated, "teacher_epochs": args.teacher_epochs,
             "student_epochs": args.student_epochs, "student_depth": args.depth, "seeds": args.seeds,
             "teacher_seeds": args.seeds if args.teacher_per_seed else [args.teacher_seed],
             "strategies": args.strategies}
    print_banner(NAME, hw, sizes)
    # Trainer places the model itself: on the GPU whenever one is visible.
    if device.type == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

    def train_params(section, epochs):
        return TrainParams(epochs=epochs, batch_size=section.batch_size, learning_rate=section.learning_rate,
                           warmup_ratio=section.warmup_ratio, weight_decay=section.weight_decay,
                           train_eval_samples=args.train_eval_samples)

    teacher_tp = train_params(params.teacher, args.teacher_epochs)
    student_tp = train_params(params.student, args.student_epochs)

    if args.out_dir:
        root = Path(args.out_dir)
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"--out-dir {root}: not empty (train_model would resume from old checkpoints)")
        root.mkdir(parents=True, exist_ok=True)
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pkd-bench-accuracy-")
        root = Path(tmp.name)

    if not args.verbose:
        hf_logging.set_verbosity_error()  # Trainer then prints logs instead of progress bars

    @contextlib.contextmanager
    def quiet():
        """Trainer's per-epoch log lines go to <root>/train.log unless --verbose."""
        if args.verbose:
            yield
            return
        with (root / "train.log").open("a") as log, contextlib.redirect_stdout(log):
            yield

    acc: dict[str, list[float]] = {"teacher": []}
    acc.update({s: [] for s in args.strategies})
    runs = []
    teachers: dict[int, tuple[Path, object]] = {}
    try:
        def get_teacher(seed: int):
            """Fine-tune the teacher for `seed` (once) and build its cache."""
            if seed in teachers:
                return teachers[seed]
            t0 = time.perf_counter()
            set_seed(seed)
            teacher_dir = root / f"teacher-s{seed}"
            with quiet():
                history = train_model(
                    build_teacher(args.checkpoint, task, seed=seed, pooling=params.pooling), tokenizer, task=task, train=train, dev=dev,
                    params=teacher_tp, learning_rate=params.teacher.learning_rate, seed=seed,
                    checkpoint_dir=root / "checkpoints" / f"teacher-s{seed}", model_out=teacher_dir,
                    history_out=root / "histories" / f"teacher-s{seed}.json",
                )
            model = load_classifier(teacher_dir)
            if device.type == "cuda":
                model = model.to(device)
            outputs = teacher_outputs(model, train, DataCollatorWithPadding(tokenizer),
                                      params.teacher.cache_batch_size)
            manifest = {"teacher_sha256": teacher_hash(teacher_dir),
                        "data_fingerprint": {"train": dataset_fingerprint(train)},
                        "layers": model.config.num_hidden_layers}
            write_cache(root / f"cache-s{seed}", {"train": outputs}, manifest, params.teacher.cache_dtype)
            cache = load_cache(root / f"cache-s{seed}", "train", dataset=train, teacher_dir=teacher_dir)
            accuracy = history[-1]["dev_accuracy"]
            acc["teacher"].append(accuracy)
            runs.append({"model": "teacher", "seed": seed, "dev_accuracy": accuracy, "history": history,
                         "seconds": time.perf_counter() - t0})
            print(f"teacher seed {seed}: dev accuracy {100 * accuracy:.2f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
            teachers[seed] = (teacher_dir, cache)
            return teachers[seed]

        for seed in args.seeds:
            teacher_dir, cache = get_teacher(seed if args.teacher_per_seed else args.teacher_seed)
            for name in args.strategies:
                strategy = params.strategy(name)
                layers = None
                if STRATEGY_LAYER_MAP[name] and strategy.beta > 0:
                    layers = layer_map(STRATEGY_LAYER_MAP[name], cache.num_layers, args.depth)
                t0 = time.perf_counter()
                set_seed(seed)
                with quiet():
                    history = train_model(
                        build_student(args.checkpoint, args.depth, task, params.student.init, teacher_dir, seed=seed, pooling=params.pooling),
                        tokenizer, task=task, train=train, dev=dev, params=student_tp,
                        learning_rate=params.student_learning_rate(name), seed=seed,
                        checkpoint_dir=root / "checkpoints" / f"{name}-{args.depth}-s{seed}",
                        model_out=root / "students" / f"{name}-{args.depth}-s{seed}",
                        history_out=root / "histories" / f"{name}-{args.depth}-s{seed}.json",
                        cache=cache if (strategy.alpha > 0 or strategy.beta > 0) else None,
                        alpha=strategy.alpha, beta=strategy.beta, temperature=strategy.temperature,
                        teacher_layers=layers, kd_reduction=params.student.kd_reduction,
                        normalize_patience=params.student.normalize_patience,
                    )
                accuracy = history[-1]["dev_accuracy"]
                acc[name].append(accuracy)
                runs.append({"model": name, "seed": seed, "dev_accuracy": accuracy, "teacher_layers": layers,
                             "history": history, "seconds": time.perf_counter() - t0})
                print(f"{LABELS[name]} seed {seed}: dev accuracy {100 * accuracy:.2f} "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    teacher_mean = statistics.fmean(acc["teacher"])
    rows = [[f"teacher {checkpoint_depth(args.checkpoint)}L", pm(acc["teacher"]), " ".join(f"{100 * a:.2f}" for a in acc["teacher"]),
             "100.0%", "92.6 (12L)", "100.0%", "92.6 (12L)", "100.0%"]]
    summary = {"teacher": {"mean": teacher_mean, "std": mean_std(acc["teacher"])[1], "values": acc["teacher"]}}
    for name in args.strategies:
        mean, std = mean_std(acc[name])
        p3, p6 = PAPER_3L[name], PAPER_6L[name]
        summary[name] = {"mean": mean, "std": std, "values": acc[name], "retention": mean / teacher_mean,
                         "paper_3l": p3, "paper_3l_retention": p3 / PAPER_TEACHER if p3 else None,
                         "paper_6l": p6, "paper_6l_retention": p6 / PAPER_TEACHER}
        rows.append([f"{LABELS[name]} {args.depth}L", pm(acc[name]), " ".join(f"{100 * a:.2f}" for a in acc[name]),
                     f"{100 * mean / teacher_mean:.1f}%",
                     f"{p3:.1f}" if p3 else "-", f"{100 * p3 / PAPER_TEACHER:.1f}%" if p3 else "-",
                     f"{p6:.1f}", f"{100 * p6 / PAPER_TEACHER:.1f}%"])
    print_table(
        ["model", "dev acc % (mean +- std)", "per seed", "retention",
         "paper 3L", "paper ret.", "paper 6L (2x)", "paper ret."],
        rows,
        title=f"SST-2 dev accuracy ({len(dev)} examples), {len(train)} train examples, "
              f"seeds {args.seeds}, max_seq_length {args.max_seq_length}",
    )
    print("retention = student mean / teacher mean; paper: BERT-base 12L teacher 92.6, "
          "3L students = 4x compression, 6L = 2x (ours: 6L -> 3L = 2x)")

    checks = {}
    means = {k: statistics.fmean(v) for k, v in acc.items()}
    for pkd in ("pkd_skip", "pkd_last"):
        if all(k in means for k in (pkd, "kd", "ft")):
            holds = means[pkd] > means["kd"] > means["ft"]
            checks[f"{pkd}>kd>ft"] = holds
            print(f"ordering {LABELS[pkd]} ({100 * means[pkd]:.2f}) > KD ({100 * means['kd']:.2f}) > "
                  f"FT ({100 * means['ft']:.2f}) on the mean: {'HOLDS' if holds else 'DOES NOT HOLD'}")
    stds = [s for k, v in acc.items() if k != "teacher" and (s := mean_std(v)[1]) is not None]
    if stds:
        print(f"largest seed std among students: {100 * max(stds):.2f} points "
              "(differences smaller than this are within seed noise)")
    print("paper 3L: PKD 88.1 > KD 87.5 = FT 87.5 (KD and FT tie); paper 6L: PKD-Skip 91.1 > KD 90.8 > FT 89.7")

    write_result(NAME, {"hardware": hw, "sizes": sizes, "params_file": args.params,
                        "hyper_parameters": {"teacher": teacher_tp.model_dump(), "student": student_tp.model_dump(),
                                             "strategies": {k: params.strategy(k).model_dump()
                                                            for k in args.strategies},
                                             "student_init": params.student.init,
                                             "kd_reduction": params.student.kd_reduction,
                                             "normalize_patience": params.student.normalize_patience},
                        "summary": summary, "ordering_checks": checks, "runs": runs,
                        "paper": {"teacher": PAPER_TEACHER, "3L": PAPER_3L, "6L": PAPER_6L},
                        "out_dir": args.out_dir}, args.json)


if __name__ == "__main__":
    main()
