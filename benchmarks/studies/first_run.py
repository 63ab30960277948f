"""The first run and the everyday loop, old main vs new main, from clean clones, in one invocation.

Study, 2026-12-03: a90e06b (`dvc repro`, the README's command then) against e229811
(`pkd repro --jobs 2`), default params, 2 cores, nothing else running.
Result: default run 1,834 s -> 972 s (0.53x); 44 -> 26 stages; no-op `dvc repro` 4.99 ->
4.07 s; forced `dvc repro -f -s report` 13.46 -> 12.17 s (medians of 3).
Decision: `make pipeline` runs `pkd repro --jobs 2`; the README's Performance section and
docs/results.md ("Run time of the default pipeline") keep the figures.

For each revision (--old, --new; default a90e06b and HEAD) the repository is cloned into a
temporary directory and checked out there, and the pipeline command that revision's README
gives (`make pipeline` minus the venv set-up: --old-cmd, --new-cmd) runs on the unchanged
default params.yaml, with this venv's tools and that clone's `pkd` (PYTHONPATH). Then, in
the same clone: `dvc stage list` (stage count), a no-op `dvc repro` and a forced
`dvc repro -f -s report`, --repeats times each (median). Printed side by side with the
new/old ratios; `dvc status` must be clean after each run. Needs an idle machine: the two
runs are sequential, so load during one of them biases the ratio.

    python benchmarks/studies/first_run.py                     # ~30 min on 2 cores
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import ROOT, hardware, print_banner, print_table, write_result

NAME = "first_run"


def sh(cmd: list[str] | str, cwd: Path, env: dict) -> tuple[float, str]:
    """(seconds, output) of a command that must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(cmd if isinstance(cmd, list) else shlex.split(cmd), cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: `{cmd}` in {cwd} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def measure(rev: str, command: str, work: Path, repeats: int) -> dict:
    repo = work / rev
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "-q", rev], cwd=repo, check=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    commit = sh(["git", "rev-parse", "--short", "HEAD"], repo, env)[1].strip()
    print(f"{rev} ({commit}): {command} ...", flush=True)
    wall, _ = sh(command, repo, env)
    _, status = sh(["dvc", "status"], repo, env)
    stages = len(sh(["dvc", "stage", "list"], repo, env)[1].strip().splitlines())
    noop = [sh(["dvc", "repro"], repo, env)[0] for _ in range(repeats)]
    forced = [sh(["dvc", "repro", "-f", "-s", "report"], repo, env)[0] for _ in range(repeats)]
    result = {"rev": rev, "commit": commit, "command": command, "wall_s": wall, "stages": stages,
              "noop_s": statistics.median(noop), "forced_report_s": statistics.median(forced),
              "noop_all": noop, "forced_all": forced, "status_clean": "up to date" in status}
    print(f"  {wall:.0f} s, {stages} stages, no-op {result['noop_s']:.2f} s, forced report "
          f"{result['forced_report_s']:.2f} s, dvc status clean: {result['status_clean']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="a90e06b")
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--old-cmd", default="dvc repro", help="the old README's pipeline command, without set-up")
    parser.add_argument("--new-cmd", default="pkd repro --jobs 2", help="the new README's, without set-up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep the clones")
    parser.add_argument("--json", help="where to write the JSON record")
    args = parser.parse_args()
    hw = hardware()
    print_banner(NAME, hw, {"old": args.old, "new": args.new, "repeats": args.repeats})
    work = args.keep or Path(tempfile.mkdtemp(prefix="first-run-"))
    work.mkdir(parents=True, exist_ok=True)
    old = measure(args.old, args.old_cmd, work, args.repeats)
    new = measure(args.new, args.new_cmd, work, args.repeats)
    rows = []
    for key, label in (("wall_s", "default run, wall (s)"), ("stages", "stages"),
                       ("noop_s", "no-op dvc repro (s, median)"), ("forced_report_s", "dvc repro -f -s report (s, median)")):
        rows.append([label, f"{old[key]:.2f}" if key != "stages" else old[key],
                     f"{new[key]:.2f}" if key != "stages" else new[key], f"{new[key] / old[key]:.2f}x"])
    print_table(["", f"old {old['commit']} ({old['command']})", f"new {new['commit']} ({new['command']})", "new/old"],
                rows, title=f"first run and everyday loop, {hw['cpus_usable']} cores, load at start "
                            f"{hw['loadavg_start'][0]:.2f}")
    write_result(NAME, {"hardware": hw, "old": old, "new": new}, args.json)


if __name__ == "__main__":
    main()
