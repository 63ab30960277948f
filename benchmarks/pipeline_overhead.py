"""DVC pipeline overhead: a no-op `dvc repro` and a one-parameter change, on a tiny configuration.

In a temporary copy of the repository (dvc.yaml, params.yaml, stages/, pkd/,
.dvcignore; then git init, dvc init, commit) with a tiny configuration (as
tests/test_pipeline.py's tiny_params: the built-in pair task, 64 train / 32 dev
examples, a random 4-layer 32-wide BERT with the real bert-base-uncased
vocabulary written to disk, depth-2 students of the four strategies, 1 epoch):

  1. `dvc repro` once: setup, every stage runs (timed and printed, no target);
  2. a no-op `dvc repro`, --repeats times (median; target: under 3 s);
  3. the paper's KD strategy's alpha changed in params.yaml, `dvc repro` timed
     once; the stages that re-ran are parsed from its "Running stage '...'" lines
     (expected: distill@<task>-<KD>-2-<seed>, evaluate@<task>, report; with
     export.enabled false there is no export stage).

The stage commands run with this interpreter's bin directory first on PATH
(the venv's python). MLflow tracking stays on (sqlite in the temporary copy),
as in a default run; --no-tracking sets PKD_TRACKING=off to show its share.
DVC's anonymous usage analytics are switched off (DVC_NO_ANALYTICS=1) so no
network attempt is timed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import (
    ROOT,
    add_smoke_arg,
    hardware,
    print_banner,
    print_table,
    save_tiny_bert,
    write_result,
)

from pkd.method import strategies
from pkd.pipeline.params import split_strategies

KD = strategies.KD  # its alpha is the parameter changed
LABELS_ONLY = [s for s in strategies.names() if not strategies.get_strategy(s).reads_teacher]

NAME = "pipeline_overhead"
COPIED = ["dvc.yaml", "params.yaml", "stages", "pkd", ".dvcignore"]
TARGET_NOOP_S = 3.0


def tiny_params(checkpoint: Path, args) -> dict:
    """tests/test_pipeline.py's tiny_params, sizes from flags."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=[args.task], builtin_train_size=args.train_size,
                          builtin_dev_size=args.dev_size, max_seq_length=48,
                          inputs={args.task: "pkd/data/builtin.py"})
    params["teacher"].update(checkpoint=str(checkpoint), epochs=1, batch_size=16, train_eval_samples=16)
    params["student"].update(depths=[2], epochs=1, batch_size=16, train_eval_samples=16)
    if args.strategies:
        params["student"].update(strategies=args.strategies, **split_strategies(args.strategies))
    params["timing"].update(warmup=0, repeats=1, max_examples=16)
    return params


def ran_stages(log: str) -> list[str]:
    return sorted(set(re.findall(r"Running stage '([^']+)'", log)))


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    log = run(cmd, cwd, env)
    return time.perf_counter() - start, log


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="no-op `dvc repro` runs (median) [3]")
    p.add_argument("--task", default="builtin_pair", help="built-in task of the tiny run [builtin_pair]")
    p.add_argument("--train-size", type=int, default=64, help="built-in train examples [64]")
    p.add_argument("--dev-size", type=int, default=32, help="built-in dev examples [32]")
    p.add_argument("--strategies", nargs="+", default=None,
                   help=f"student.strategies of the tiny run (must include {KD}) [params.yaml's]")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS for the stage processes (default: unset, torch's default)")
    p.add_argument("--no-tracking", action="store_true", help="PKD_TRACKING=off for every stage")
    p.add_argument("--keep", default=None, help="copy the temporary repository here at the end")
    p.add_argument("--json", default=None, help="JSON record path [benchmarks/results/pipeline_overhead.json]")
    add_smoke_arg(p, f"strategies {' '.join([*LABELS_ONLY[:1], KD])} only (8 stages instead of 10), 1 no-op repeat; "
                     "still minutes: every stage is a fresh Python process")
    args = p.parse_args(argv)
    if args.smoke:
        args.strategies, args.repeats = [*LABELS_ONLY[:1], KD], 1
    if args.strategies and KD not in args.strategies:
        p.error(f"--strategies must include {KD} (its alpha is the parameter changed)")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PKD_PARAMS", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    if args.no_tracking:
        env["PKD_TRACKING"] = "off"
    dvc = shutil.which("dvc", path=env["PATH"]) or "dvc"
    dvc_version = run([dvc, "--version"], ROOT, env).strip()
    hw = hardware(None)
    hw["torch_threads_stages"] = args.threads or "torch default"
    sizes = {"task": args.task, "train_size": args.train_size, "dev_size": args.dev_size,
             "strategies": ",".join(args.strategies or ["params.yaml"]), "depths": "2",
             "noop_repeats": args.repeats, "tracking": "off" if args.no_tracking else "on",
             "dvc": dvc_version, "python": str(sys.executable)}
    print_banner(NAME, hw, sizes)

    with tempfile.TemporaryDirectory(prefix="pkd-bench-pipeline-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        for name in COPIED:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
        for junk in list(repo.rglob("__pycache__")):
            shutil.rmtree(junk)
        checkpoint = save_tiny_bert(Path(tmp) / "tiny-bert")
        (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(checkpoint, args), sort_keys=False))
        (repo / ".gitignore").write_text("mlflow.db\nruns/\nmlartifacts/\n")
        git = ["git", "-c", "user.name=pkd-bench", "-c", "user.email=pkd-bench@example.invalid"]
        run(git + ["init", "-q"], repo, env)
        run([dvc, "init", "-q"], repo, env)
        run(git + ["add", "-A"], repo, env)
        run(git + ["commit", "-qm", "tiny"], repo, env)

        print("setup: full `dvc repro` ...", flush=True)
        setup_s, log = timed([dvc, "repro"], repo, env)
        setup_stages = ran_stages(log)
        print(f"setup: {setup_s:.1f}s, {len(setup_stages)} stages", flush=True)

        noop, noop_stages = [], set()
        for r in range(args.repeats):
            seconds, log = timed([dvc, "repro"], repo, env)
            noop.append(seconds)
            noop_stages.update(ran_stages(log))
            print(f"no-op repro {r + 1}/{args.repeats}: {seconds:.2f}s", flush=True)

        params = yaml.safe_load((repo / "params.yaml").read_text())
        old = params["strategies"][KD]["alpha"]
        new = 0.5 if old != 0.5 else 0.6
        params["strategies"][KD]["alpha"] = new
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        change_s, log = timed([dvc, "repro"], repo, env)
        change_stages = ran_stages(log)
        print(f"after strategies.{KD}.alpha {old} -> {new}: {change_s:.1f}s, stages {change_stages}", flush=True)
        if args.keep:
            shutil.copytree(repo, args.keep, dirs_exist_ok=True)
            print(f"repository kept in {args.keep}")

    seed = params["student"]["seeds"][0]
    expected = sorted({f"distill@{args.task}-{KD}-2-{seed}", f"evaluate@{args.task}", "report"})
    noop_median = statistics.median(noop)
    print_table(
        ["measure", "seconds", "target", "ratio to target", "stages re-run"],
        [
            [f"no-op dvc repro (median of {len(noop)})", noop_median, f"{TARGET_NOOP_S:.1f}",
             f"{noop_median / TARGET_NOOP_S:.2f}", str(len(noop_stages))],
            [f"strategies.{KD}.alpha changed", change_s, "-", "-", str(len(change_stages))],
            ["setup: full dvc repro (not a target)", setup_s, "-", "-", str(len(setup_stages))],
        ],
        title="DVC pipeline overhead (tiny configuration; stage time is mostly Python/torch start-up)",
    )
    print(f"no-op under {TARGET_NOOP_S:.0f} s target: {'YES' if noop_median < TARGET_NOOP_S else 'NO'} "
          f"(runs: {', '.join(f'{s:.2f}' for s in noop)}); stages re-run by no-op: {sorted(noop_stages) or 'none'}")
    print(f"re-ran after the change: {', '.join(change_stages)}; as expected ({', '.join(expected)}): "
          f"{'YES' if change_stages == expected else 'NO'}")
    if change_stages:
        print(f"per re-run stage: {change_s / len(change_stages):.1f}s on average; "
              f"setup per stage: {setup_s / max(len(setup_stages), 1):.1f}s")

    write_result(NAME, {
        "hardware": hw, "sizes": sizes,
        "setup_seconds": setup_s, "setup_stages": setup_stages,
        "noop_seconds": noop, "noop_median": noop_median, "noop_target": TARGET_NOOP_S,
        "noop_under_target": noop_median < TARGET_NOOP_S, "noop_stages": sorted(noop_stages),
        "change": {"key": f"strategies.{KD}.alpha", "from": old, "to": new, "seconds": change_s,
                   "stages": change_stages, "expected": expected, "as_expected": change_stages == expected},
    }, args.json)


if __name__ == "__main__":
    main()
