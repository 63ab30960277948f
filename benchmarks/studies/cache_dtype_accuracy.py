"""Does a float16 teacher cache change the students? float32 vs float16, paired over seeds, on real data.

Study, 2026-11-30, at 5ef01ee: MRPC, the glue-cpu preset's teacher, three seeds.
Result: float16 and float32 caches gave the same number of correct dev examples for every
seed (docs/results.md, "float16 teacher cache (the default) vs float32").
Decision: `teacher.cache_dtype: float16` is the default (half the disk and reads).

Uses a finished pipeline run (--repo: its params.yaml, prepared data and fine-tuned
teacher of --task). Builds the teacher cache twice from that one teacher
(pkd.cache.build.build_teacher_cache, float32 and float16, the layers the
configured students read), then trains one --strategy student per seed from each
(pkd.training.distill.plan_student / train_student: the distill stage's own calls, same
params otherwise) and prints each student's final dev main metric side by side,
the per-seed difference and its paired 95% t-interval (pkd.report.stats).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import hardware, print_banner, print_table, write_result
from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorWithPadding

from pkd.cache.build import build_teacher_cache
from pkd.data import get_task
from pkd.method import strategies
from pkd.models.loading import load_classifier
from pkd.pipeline.params import load_params
from pkd.report.stats import paired_t_interval, verdict
from pkd.training.distill import plan_student, train_student

NAME = "cache_dtype_accuracy"
DTYPES = ("float32", "float16")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a pipeline checkout whose teacher@<task> has run")
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--strategy", default=strategies.PKD)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    params = load_params(repo / "params.yaml")
    task = get_task(args.task)
    prepared, teacher_dir = repo / "data/prepared" / task.name, repo / "models/teacher" / task.name
    splits = load_from_disk(str(prepared))
    hw = hardware()
    print_banner(NAME, hw, {"repo": str(repo), "task": task.name, "strategy": args.strategy, "depth": args.depth,
                            "seeds": args.seeds, "train": len(splits["train"])})
    teacher = load_classifier(teacher_dir)
    layers = params.patient_layers(teacher.config.num_hidden_layers)
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(teacher_dir)))
    scores: dict[str, dict[int, float]] = {dtype: {} for dtype in DTYPES}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in DTYPES:
            cache_dir = Path(tmp) / dtype
            build_teacher_cache(teacher, task, splits, collator, cache_dir, teacher_dir=teacher_dir, layers=layers,
                                dtype=dtype, batch_size=params.teacher.cache_batch_size)
            for seed in args.seeds:
                plan = plan_student(params, task, args.strategy, args.depth, seed, splits=splits, prepared_dir=prepared,
                                    teacher_dir=teacher_dir, cache_dir=cache_dir)
                history = train_student(plan, params, splits, teacher_dir=teacher_dir,
                                        checkpoint_dir=Path(tmp) / f"ckpt-{dtype}-{seed}",
                                        model_out=Path(tmp) / f"student-{dtype}-{seed}",
                                        history_out=Path(tmp) / f"history-{dtype}-{seed}.json")
                scores[dtype][seed] = history[-1][f"dev_{task.main_metric}"]
                print(f"{dtype} seed {seed}: dev {task.main_metric} {100 * scores[dtype][seed]:.2f}", flush=True)
    diffs = [100 * (scores["float16"][s] - scores["float32"][s]) for s in args.seeds]
    rows = [[s, 100 * scores["float32"][s], 100 * scores["float16"][s], d] for s, d in zip(args.seeds, diffs)]
    interval = paired_t_interval(diffs)
    print_table(["seed", "float32 cache", "float16 cache", "float16 - float32"], rows,
                title=f"{task.name} dev {task.main_metric} (%), {args.strategy} {args.depth}-layer students")
    low = "-" if interval.low is None else f"{interval.low:+.2f}"
    high = "-" if interval.high is None else f"{interval.high:+.2f}"
    print(f"mean difference {interval.mean:+.2f} points, 95% interval [{low}, {high}] over {interval.n} seeds: "
          f"{verdict(interval, 'float16', 'float32')}; {time.time() - started:.0f} s")
    write_result(NAME, {"hardware": hw, "task": task.name, "strategy": args.strategy, "depth": args.depth,
                        "scores": scores, "diffs_points": diffs, "interval": [interval.low, interval.high]}, args.json)


if __name__ == "__main__":
    main()
