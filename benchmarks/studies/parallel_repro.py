"""Serial `dvc repro` vs `pkd repro --jobs N`, from scratch, on the embedded default at reduced size.

Study, 2026-11-30, at 0fc1fb6: the embedded default at 600/300 built-in examples per task
(44 stages then, 16 students), 2 cores, nothing else running.
Result: `pkd repro --jobs 2` 430 s against `dvc repro` 537 s (0.80x); both leave
`dvc status` clean; all 18 dev scores identical (largest difference 0.00 points).
Decision: `pkd repro --jobs N` is the README's way to run the pipeline.

Two temporary copies of the repository (as benchmarks/pipeline_overhead.py makes
them) get the same params.yaml: the embedded default (the real MiniLM-L6 teacher
checkpoint, both built-in tasks, 16 students) with --train-size / --dev-size
built-in examples. The first runs `dvc repro` (torch's default threads), the
second `pkd repro --jobs N` (cores/N threads per stage). Printed side by side:
wall time, stages run, the ratio, whether `dvc status` is clean afterwards, and
the largest difference between the two runs' dev scores (thread counts change
float summation order, so bit-identity is not expected; a difference well under
a point says the runs trained the same thing).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import ROOT, hardware, print_banner, print_table, write_result
from pipeline_overhead import COPIED, ran_stages, run, timed

NAME = "parallel_repro"


def make_copy(repo: Path, params: dict, env: dict) -> None:
    repo.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    for junk in list(repo.rglob("__pycache__")):
        shutil.rmtree(junk)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("mlflow.db\nruns/\nmlartifacts/\n")
    git = ["git", "-c", "user.name=pkd-bench", "-c", "user.email=pkd-bench@example.invalid"]
    run(git + ["init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(git + ["add", "-A"], repo, env)
    run(git + ["commit", "-qm", "bench"], repo, env)


def dev_scores(repo: Path) -> dict[str, float]:
    """{task/model: dev main metric} from metrics/eval."""
    scores = {}
    for path in sorted((repo / "metrics/eval").glob("*/*.json")):
        record = json.loads(path.read_text())
        dev = next(split for split in record["splits"] if split.startswith("dev"))
        scores[f"{path.parent.name}/{path.stem}"] = record["splits"][dev][record["main_metric"]]
    return scores


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2, help="pkd repro --jobs [2]")
    p.add_argument("--train-size", type=int, default=600, help="built-in train examples per task [600]")
    p.add_argument("--dev-size", type=int, default=300, help="built-in dev examples per task [300]")
    p.add_argument("--json", default=None, help="JSON record path [benchmarks/results/parallel_repro.json]")
    args = p.parse_args(argv)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1"}
    for key in ("MLFLOW_TRACKING_URI", "PKD_PARAMS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(builtin_train_size=args.train_size, builtin_dev_size=args.dev_size)
    hw = hardware(None)
    sizes = {"tasks": ",".join(params["data"]["tasks"]), "train_size": args.train_size,
             "dev_size": args.dev_size, "depths": params["student"]["depths"],
             "strategies": ",".join(params["student"]["strategies"]), "jobs": args.jobs}
    print_banner(NAME, hw, sizes)

    results = {}
    with tempfile.TemporaryDirectory(prefix="pkd-bench-parallel-") as tmp:
        for label, cmd in (("dvc repro", ["dvc", "repro"]),
                           (f"pkd repro --jobs {args.jobs}", ["pkd", "repro", "--jobs", str(args.jobs)])):
            repo = Path(tmp) / label.replace(" ", "_")
            make_copy(repo, params, env)
            print(f"{label} ...", flush=True)
            seconds, log = timed(cmd, repo, env)
            status = run(["dvc", "status"], repo, env)
            # pkd repro leaves each stage's DVC output in runs/logs/<stage>.log.
            logs = [log, *(p.read_text() for p in (repo / "runs/logs").glob("*.log"))]
            stages = ran_stages("\n".join(logs))
            results[label] = {"seconds": seconds, "stages": len(stages), "up_to_date": "up to date" in status,
                              "scores": dev_scores(repo)}
            print(f"{label}: {seconds:.0f} s, {len(stages)} stages", flush=True)

    serial, parallel = results.values()
    common = serial["scores"].keys() & parallel["scores"].keys()
    diff = max((abs(serial["scores"][k] - parallel["scores"][k]) for k in common), default=float("nan"))
    print_table(
        ["command", "wall s", "stages run", "dvc status clean", "vs serial"],
        [[label, r["seconds"], r["stages"], r["up_to_date"], f"{r['seconds'] / serial['seconds']:.2f}x"]
         for label, r in results.items()],
        title="Serial vs parallel stages, from scratch (embedded default, reduced size)",
    )
    print(f"models scored by both: {len(common)} of {len(serial['scores'])}; largest dev-score difference: "
          f"{diff * 100:.2f} points")
    write_result(NAME, {"hardware": hw, "sizes": sizes, "max_dev_score_difference": diff,
                        "runs": {k: {**v, "scores": v["scores"]} for k, v in results.items()}}, args.json)


if __name__ == "__main__":
    main()
