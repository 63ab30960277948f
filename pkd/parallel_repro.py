"""`pkd repro --jobs N`: `dvc repro`, with up to N independent stages at a time.

DVC runs one stage at a time. Its own concurrency pieces make parallel runs safe:
`dvc repro -s <stage>` in separate processes, `--wait-for-lock` so that they take
turns on the repository lock (held only while DVC books a stage, not while its
command runs), and per-output read/write locks. This module only decides the
order: DVC's stage graph says what waits for what, `dvc status` says what is
out of date, and everything downstream of an out-of-date stage runs after it.
Each stage is still a plain `dvc repro -s`, so dvc.lock, the run cache and
`dvc status` afterwards are exactly what a serial `dvc repro` leaves.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pkd.errors import PKDError
from pkd.paths import LOGS, stage_log


def stage_graph(root: Path = Path(".")) -> tuple[dict[str, set[str]], set[str]]:
    """({stage: the stages it depends on}, the stages marked `meta: {run_alone: true}`),
    from DVC's own pipeline index."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # an edge points from a stage to a stage it depends on
        upstream = {stage.addressing: {up.addressing for up in graph.successors(stage)} for stage in graph}
        alone = {stage.addressing for stage in graph if (getattr(stage, "meta", None) or {}).get("run_alone")}
        return upstream, alone


def out_of_date(root: Path = Path(".")) -> set[str]:
    """The stages `dvc status` reports as changed (deps, params, outs or command)."""
    result = subprocess.run(["dvc", "status", "--json"], check=False, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise PKDError(f"dvc status failed: {result.stderr.strip() or result.stdout.strip()}")
    return set(json.loads(result.stdout or "{}"))


def stages_to_run(graph: dict[str, set[str]], changed: set[str]) -> set[str]:
    """The changed stages and every stage downstream of one: their inputs are about to change."""
    downstream: dict[str, set[str]] = {name: set() for name in graph}
    for name, upstream in graph.items():
        for up in upstream:
            downstream.setdefault(up, set()).add(name)
    selected, frontier = set(), [s for s in changed if s in graph]
    while frontier:
        name = frontier.pop()
        if name not in selected:
            selected.add(name)
            frontier.extend(downstream.get(name, ()))
    return selected


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(jobs: int, root: Path = Path("."), poll_seconds: float = 0.5) -> list[str]:
    """Bring the pipeline up to date with at most `jobs` stages running at once.

    Returns the stages it ran (DVC may find some unchanged once their upstream
    re-ran: `same` in the report), in the order they finished. On a failed stage no
    new stage starts, the running ones finish, and PKDError names the stage and
    its log (runs/logs/<stage>.log)."""
    if jobs < 1:
        raise PKDError(f"--jobs must be at least 1, got {jobs}")
    graph, alone = stage_graph(root)
    pending = stages_to_run(graph, out_of_date(root))
    env = dict(os.environ)
    # One BLAS/OpenMP pool per core: N processes each with all cores' threads would oversubscribe.
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(jobs)))
    (root / LOGS).mkdir(parents=True, exist_ok=True)
    print(f"pkd repro: {len(pending)} of {len(graph)} stage(s) to run, {jobs} at a time, "
          f"{env['OMP_NUM_THREADS']} thread(s) each", flush=True)

    def launch(name: str) -> subprocess.Popen:
        print(f"  start  {name}", flush=True)
        stage_env = env
        if name in alone and "OMP_NUM_THREADS" not in os.environ:
            # Alone on the machine: all cores, as under a serial `dvc repro`.
            stage_env = {**env, "OMP_NUM_THREADS": str(threads_per_job(1))}
        with open(root / stage_log(name), "w") as log:
            return subprocess.Popen(["dvc", "--wait-for-lock", "repro", "--single-item", name],
                                    cwd=root, env=stage_env, stdout=log, stderr=subprocess.STDOUT)

    def finished(name: str, returncode: int, minutes: float) -> None:
        if returncode != 0:
            print(f"  FAILED {name} (exit {returncode}); log: {stage_log(name)}", flush=True)
            return
        # Upstream re-ran but produced the same bytes: DVC skips the stage.
        ran = f"Running stage '{name}'" in (root / stage_log(name)).read_text(errors="replace")
        print(f"  {'done' if ran else 'same'}   {name} ({minutes:.1f} min)", flush=True)

    done, failed = schedule(graph, alone, pending, jobs, launch, finished, poll_seconds)
    if failed:
        print(_tail(root / stage_log(failed[0])), file=sys.stderr)
        raise PKDError(f"stage {failed[0]} failed (its log above, in full in {stage_log(failed[0])})")
    return done


def schedule(
    graph: dict[str, set[str]], alone: set[str], pending: set[str], jobs: int,
    launch: Callable[[str], Any], finished: Callable[[str, int, float], None], poll_seconds: float = 0.5,
) -> tuple[list[str], list[str]]:
    """Start each pending stage once none of its upstream stages is pending or running,
    at most `jobs` at a time; a stage in `alone` runs with nothing beside it. `launch`
    returns a handle with Popen's `poll()`. Returns (succeeded, failed) in finishing order;
    after a failure nothing new starts."""
    pending = set(pending)
    order = list(graph)  # DVC's index order: stable, so runs are reproducible
    running: dict[str, tuple[Any, float]] = {}
    succeeded: list[str] = []
    failed: list[str] = []
    while (pending and not failed) or running:
        blocked = pending | set(running)
        ready = [s for s in order if s in pending and not (graph[s] & blocked)]
        # A stage that measures time runs alone, after everything else that is ready.
        ready.sort(key=lambda s: s in alone)
        while ready and len(running) < jobs and not failed and not (set(running) & alone):
            if ready[0] in alone and running:
                break
            name = ready.pop(0)
            pending.discard(name)
            running[name] = (launch(name), time.monotonic())
        time.sleep(poll_seconds)
        for name, (proc, started) in list(running.items()):
            returncode = proc.poll()
            if returncode is None:
                continue
            del running[name]
            (succeeded if returncode == 0 else failed).append(name)
            finished(name, returncode, (time.monotonic() - started) / 60)
    return succeeded, failed


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(jobs: int) -> None:
    started = time.monotonic()
    ran = run_parallel(jobs)
    print(f"pkd repro: {len(ran)} stage(s) brought up to date in {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr)
