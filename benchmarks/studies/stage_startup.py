"""Stage start-up: how long each stage script takes to import what it needs and exit, before vs after.

Study, 2026-11-30: 92f07dc (before) against e1a3f91 (after: `datasets`, `scipy.stats` and
scikit-learn imported only where used), median of 2, 1 thread, taken while a training run
held both cores (ratios, not speeds).
Result: `report` 2.90 -> 1.60 s (1.81x; 1,898 -> 1,012 modules, no torch, datasets or
scipy.stats); `evaluate` 10.00 -> 8.14 s; `distill` 8.62 -> 7.32 s; `prepare`, `teacher`,
`teacher_cache`, `timing` within noise (7.4-8.6 s); `export` and `register` with export
off exit before importing torch.
Decision: heavy imports stay inside the functions that use them; tests/pipeline/test_stage.py
checks that the report stage loads no model, cache or training code.

For each revision (--before, default the commit before the start-up work; --after,
default the working tree) the repository's stages/ and pkd/ are extracted to a
temporary directory, and each stage script is run with valid arguments and
PKD_PARAMS pointing at a missing file: it imports its modules, fails to read the
parameters, prints one line and exits 2. That is the fixed cost every `dvc repro`
pays per stage before any work. Printed side by side per stage: median wall time
over --repeats runs (the two revisions interleaved, so load on the machine hits
both alike), the number of modules imported (`python -X importtime`), and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import ROOT, hardware, print_banner, print_table, write_result

from pkd.method import strategies

NAME = "stage_startup"
STAGE_ARGS = {
    "prepare": ["--task", "builtin_pair"],
    "teacher": ["--task", "builtin_pair"],
    "teacher_cache": ["--task", "builtin_pair"],
    "distill": ["--task", "builtin_pair", "--strategy", strategies.KD, "--depth", "2", "--seed", "42"],
    "evaluate": ["--task", "builtin_pair"],
    "timing": [],
    "report": [],
}


def extract(rev: str | None, into: Path) -> Path:
    """stages/ and pkd/ at `rev` (None: the working tree) under `into`."""
    into.mkdir(parents=True)
    if rev is None:
        for part in ("stages", "pkd"):
            subprocess.run(["cp", "-r", str(ROOT / part), str(into / part)], check=True)
        return into
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "stages", "pkd"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_once(tree: Path, stage: str, importtime: bool = False) -> tuple[float, int | None]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PKD_PARAMS": str(tree / "missing-params.yaml"),
           "PKD_TRACKING": "off"}
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), f"stages/{stage}.py", *STAGE_ARGS[stage]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 2 or "missing-params.yaml" not in proc.stderr:
        raise SystemExit(f"error: {stage} at {tree} did not stop at the params file:\n{proc.stderr[-2000:]}")
    modules = proc.stderr.count("import time:") - 1 if importtime else None  # minus the header line
    return seconds, modules


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="92f07dc", help="git revision measured as 'before' [92f07dc]")
    parser.add_argument("--after", default=None, help="git revision measured as 'after' [the working tree]")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per stage and revision [3]")
    parser.add_argument("--stages", nargs="+", default=list(STAGE_ARGS), choices=list(STAGE_ARGS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    hw = hardware()
    print_banner(NAME, hw, {"before": args.before, "after": args.after or "working tree", "repeats": args.repeats})
    rows, record = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": extract(args.before, Path(tmp) / "before"), "after": extract(args.after, Path(tmp) / "after")}
        for stage in args.stages:
            times = {k: [] for k in trees}
            modules = {k: run_once(tree, stage, importtime=True)[1] for k, tree in trees.items()}  # also warms the disk cache
            for _ in range(args.repeats):
                for key, tree in trees.items():
                    times[key].append(run_once(tree, stage)[0])
            before, after = (statistics.median(times[k]) for k in ("before", "after"))
            rows.append([stage, before, after, f"{before / after:.2f}x", modules["before"], modules["after"]])
            record[stage] = {"before_s": times["before"], "after_s": times["after"], "modules": modules}
    print_table(["stage", "before s", "after s", "speed-up", "modules before", "modules after"], rows,
                title="Stage start-up: import + exit (median wall time)")
    write_result(NAME, {"hardware": hw, "before": args.before, "after": args.after, "stages": record}, args.json)


if __name__ == "__main__":
    main()
