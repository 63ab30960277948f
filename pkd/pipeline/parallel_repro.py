"""`pkd repro --jobs N`: `dvc repro`, with up to N independent stages at a time.

DVC runs one stage at a time. Its own concurrency pieces make parallel runs safe:
`dvc repro -s <stage>` in separate processes, `--wait-for-lock` so that they take
turns on the repository lock (held only while DVC books a stage, not while its
command runs), and per-output read/write locks. This module only decides the
order: DVC's stage graph says what waits for what, `dvc status` says what is
out of date, and everything downstream of an out-of-date stage runs after it.
Each stage is still a plain `dvc repro -s`, so dvc.lock, the run cache and
`dvc status` afterwards are exactly what a serial `dvc repro` leaves.

Stopping (Ctrl-C, SIGTERM, SIGHUP) stops the stages' commands and lets DVC unwind
as after a failed command: it releases its locks and records nothing for the
stage, so `pkd repro` again resumes where the run stopped. Killed outright
(SIGKILL), `pkd repro` leaves a watchdog behind that stops its stages the same way.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from pkd.errors import PKDError
from pkd.pipeline.paths import LOGS, stage_log

RWLOCK = Path(".dvc/tmp/rwlock")  # DVC's per-output read/write locks, a JSON file


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP stopped `pkd repro`; the stages that were running have exited."""

    def __init__(self, signum: int, stopped: list[str], not_started: int, jobs: int):
        self.signum, self.stopped, self.not_started, self.jobs = signum, stopped, not_started, jobs
        what = f"stopped {', '.join(sorted(stopped))}" if stopped else "no stage was running"
        super().__init__(
            f"pkd repro: interrupted by {signal.Signals(signum).name}: {what}; {not_started} stage(s) not "
            f"started; finished stages are kept. Run `pkd repro --jobs {jobs}` to resume.")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP


class _Signals:
    """Counts SIGINT/SIGTERM/SIGHUP instead of raising KeyboardInterrupt or dying, so that the
    scheduler can stop the stages in order rather than leave them running in their own sessions."""

    def __init__(self):
        self.first: int | None = None
        self.count = 0

    def __call__(self, signum: int, _frame: Any) -> None:
        self.first = self.first or signum
        self.count += 1


@contextmanager
def _catching_signals() -> Iterator[_Signals]:
    caught = _Signals()
    stops = [signal.SIGINT, signal.SIGTERM]
    # A closed terminal or a dropped SSH session; not under `nohup`, which asks to run on.
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        stops.append(signal.SIGHUP)
    previous = {sig: signal.signal(sig, caught) for sig in stops}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _StageGroup:
    """A stage's `dvc repro` process, the leader of its own session and process group, and what
    it started."""

    def __init__(self, pid: int):
        self.pid = pid
        self._signalled: set[int] = set()
        self._forced = False

    def interrupt(self, force: bool = False) -> None:
        """SIGINT to the stage's command and everything it started, but not to DVC itself, which
        ignores SIGINT while a command runs anyway: the command unwinds its `finally` blocks (a
        temporary directory, the MLflow run) and fails, and DVC then takes its normal failure path,
        releasing its locks and recording nothing. Called at every poll while stopping, since DVC
        may start the command only after the stop (it was waiting for the repository lock).
        `force` (a second Ctrl-C): SIGTERM to DVC too; DVC drops a dead process's rwlock entries,
        and a half-written rwlock is removed by the next `pkd repro`."""
        if force:
            if not self._forced:
                self._forced = True
                _signal_group(self.pid, signal.SIGTERM)
            return
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for proc in descendants:
            if proc.pid not in self._signalled:
                self._signalled.add(proc.pid)
                try:
                    proc.send_signal(signal.SIGINT)
                except psutil.NoSuchProcess:
                    pass


class StageProcess(_StageGroup):
    """A running `dvc repro --single-item <stage>`, started in its own session.

    Its own session: a terminal's Ctrl-C signals the whole foreground process group at once,
    and a DVC process hit while it rewrites .dvc/tmp/rwlock leaves it empty, which breaks every
    later `dvc` command. Started apart, the stage hears of a stop from `interrupt` only."""

    def __init__(self, args: list[str], **popen_kwargs: Any):
        self.popen = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
        super().__init__(self.popen.pid)

    def poll(self) -> int | None:
        return self.popen.poll()


def package_root() -> Path:
    """The folder holding this pkd package, so that the watchdog imports this pkd, installed or not."""
    return Path(__file__).resolve().parents[2]


class _Watchdog:
    """A process that outlives `pkd repro` and stops the stages it was running if it ends
    without reaping them: killed outright (SIGKILL, the OOM killer), which no handler catches.

    It hears of each stage's start and end over a pipe, and of pkd repro's end from the pipe's
    closing, which the kernel does however pkd repro ends. Its own session: a terminal's signals
    are for pkd repro, which stops the stages itself."""

    def __init__(self):
        code = f"import sys; sys.path.insert(0, {str(package_root())!r}); " \
               "from pkd.pipeline.parallel_repro import watch; watch(sys.stdin)"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, start_new_session=True)

    def tell(self, event: str, pid: int) -> None:
        try:
            self.proc.stdin.write(f"{event} {pid}\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the watchdog is gone: the stages are still stopped on SIGINT, SIGTERM and SIGHUP

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # it is stopping stages left running, on its own


def watch(events, poll_seconds: float = 0.5, grace_seconds: float = 60.0) -> None:
    """The watchdog's loop: read `start PID` / `end PID` until the pipe closes, then stop every stage
    that started and did not end, as a Ctrl-C does (StageProcess.interrupt), forcing after
    `grace_seconds`."""
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    running: dict[int, psutil.Process] = {}
    for line in events:
        event, _, pid = line.partition(" ")
        if event == "start":
            try:
                running[int(pid)] = psutil.Process(int(pid))  # its start time guards against a reused PID
            except psutil.NoSuchProcess:
                pass
        elif event == "end":
            running.pop(int(pid), None)
    if not running:
        return
    try:
        print(f"pkd repro ended with {len(running)} stage(s) running: stopping them", file=sys.stderr, flush=True)
    except OSError:
        pass  # its terminal is gone
    stages = {pid: _StageGroup(pid) for pid in running}
    deadline = time.monotonic() + grace_seconds
    while stages := {pid: s for pid, s in stages.items() if _alive(running[pid])}:
        force = time.monotonic() > deadline
        for stage in stages.values():
            stage.interrupt(force=force)
            if force and time.monotonic() > deadline + grace_seconds / 6:
                _signal_group(stage.pid, signal.SIGKILL)
        time.sleep(poll_seconds)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


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


def dvc_processes(root: Path) -> dict[int, list[str]]:
    """{PID: command line} of the `dvc` processes working in this repository: a command line that
    runs dvc and a working directory inside `root`, not inside another repository nested in it
    (DVC finds its repository by walking up from there).

    A process scan, because DVC's own lock files do not say this: DVC holds the repository lock
    (.dvc/tmp/lock) only while it books a stage, not while the stage's command runs, and
    rwlock.lock only while it edits rwlock, yet a DVC process whose command is running will
    still write rwlock when the command ends."""
    root = root.resolve()
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        pid, cmdline, cwd = proc.info["pid"], proc.info["cmdline"] or [], proc.info["cwd"]
        if pid == os.getpid() or not cwd:  # cwd None: not ours to see
            continue
        runs_dvc = any(Path(arg).name in ("dvc", "dvc.exe") for arg in cmdline[:2]) or cmdline[1:3] == ["-m", "dvc"]
        if runs_dvc and _repository_of(Path(cwd), root) == root:
            found[pid] = cmdline
    return found


def _repository_of(cwd: Path, root: Path) -> Path | None:
    """The DVC repository a process working in `cwd` uses, if it is `root` or inside it."""
    for folder in (cwd, *cwd.parents):
        if folder == root or (folder / ".dvc").is_dir():
            return folder
        if folder in root.parents:
            return None
    return None


def refuse_running_stages(root: Path = Path(".")) -> None:
    """Refuse to start beside a `dvc repro` still working in this repository: it holds its
    outputs' locks, and the stages it runs would fail on them. A `pkd repro` killed without its
    watchdog leaves its stages so; naming them tells what to wait for or stop."""
    running = {pid: cmdline for pid, cmdline in dvc_processes(root).items() if {"repro", "exp"} & set(cmdline)}
    if running:
        shown = "; ".join(f"PID {pid} ({_dvc_command(cmdline)})" for pid, cmdline in sorted(running.items()))
        raise PKDError(f"DVC is already running stages in this repository: {shown}; wait for them to finish, "
                       "or stop each with `kill -INT -- -PID` (SIGINT to its stage, which DVC then unwinds)")


def _dvc_command(cmdline: list[str]) -> str:
    start = next((i for i, arg in enumerate(cmdline) if Path(arg).name in ("dvc", "dvc.exe")), 0)
    return " ".join(["dvc", *cmdline[start + 1:]])


def reset_broken_rwlock(root: Path = Path(".")) -> None:
    """Remove .dvc/tmp/rwlock if it is unreadable (a DVC process killed while writing it leaves it
    empty or cut short, and every `dvc` command then refuses to run) and no DVC process works here.
    A missing rwlock is DVC's "no locks held". With a DVC process alive the file may be being
    written right now: refuse, naming the process."""
    from dvc.rwlock import SCHEMA
    from voluptuous import Invalid

    path = root / RWLOCK
    try:
        SCHEMA(json.loads(path.read_text()))
        return
    except FileNotFoundError:
        return
    except (ValueError, Invalid):
        pass
    if live := dvc_processes(root):
        raise PKDError(f"{RWLOCK} is unreadable and DVC is running in this repository (PID "
                       f"{', '.join(map(str, sorted(live)))}); run again once it has finished")
    path.unlink(missing_ok=True)
    print(f"warning: {RWLOCK} was unreadable (left by an interrupted DVC) and no DVC process "
          "runs here: removed it", file=sys.stderr)


def run_parallel(jobs: int, root: Path = Path("."), poll_seconds: float = 0.5) -> list[str]:
    """Bring the pipeline up to date with at most `jobs` stages running at once.

    Returns the stages it ran (DVC may find some unchanged once their upstream
    re-ran: `same` in the report), in the order they finished. On a failed stage no
    new stage starts, the running ones finish, and PKDError names the stage and
    its log (runs/logs/<stage>.log). On SIGINT, SIGTERM or SIGHUP no new stage starts, the
    running ones are stopped (StageProcess.interrupt) and waited for, and
    Interrupted says which."""
    if jobs < 1:
        raise PKDError(f"--jobs must be at least 1, got {jobs}")
    with _catching_signals() as signals:
        return _run_parallel(jobs, root, poll_seconds, signals)


def _run_parallel(jobs: int, root: Path, poll_seconds: float, signals: _Signals) -> list[str]:
    def stop_if_signalled(stopped: list[str], not_started: int) -> None:
        if signals.first:
            raise Interrupted(signals.first, stopped, not_started, jobs)

    refuse_running_stages(root)
    reset_broken_rwlock(root)
    graph, alone = stage_graph(root)
    stop_if_signalled([], 0)
    try:
        changed = out_of_date(root)
    except PKDError:
        stop_if_signalled([], 0)  # `dvc status` got the terminal's Ctrl-C too
        raise
    pending = stages_to_run(graph, changed)
    stop_if_signalled([], len(pending))
    env = dict(os.environ)
    # One BLAS/OpenMP pool per core: N processes each with all cores' threads would oversubscribe.
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(jobs)))
    (root / LOGS).mkdir(parents=True, exist_ok=True)
    print(f"pkd repro: {len(pending)} of {len(graph)} stage(s) to run, {jobs} at a time, "
          f"{env['OMP_NUM_THREADS']} thread(s) each", flush=True)

    pids: dict[str, int] = {}

    def launch(name: str) -> StageProcess:
        print(f"  start  {name}", flush=True)
        stage_env = env
        if name in alone and "OMP_NUM_THREADS" not in os.environ:
            # Alone on the machine: all cores, as under a serial `dvc repro`.
            stage_env = {**env, "OMP_NUM_THREADS": str(threads_per_job(1))}
        with open(root / stage_log(name), "w") as log:
            stage = StageProcess(["dvc", "--wait-for-lock", "repro", "--single-item", name],
                                 cwd=root, env=stage_env, stdout=log, stderr=subprocess.STDOUT)
        pids[name] = stage.pid
        watchdog.tell("start", stage.pid)
        return stage

    def finished(name: str, returncode: int, minutes: float) -> None:
        watchdog.tell("end", pids.pop(name))
        if returncode != 0 and signals.first:
            print(f"  stopped {name} ({minutes:.1f} min)", flush=True)
            return
        if returncode != 0:
            print(f"  FAILED {name} (exit {returncode}); log: {stage_log(name)}", flush=True)
            return
        # Upstream re-ran but produced the same bytes: DVC skips the stage.
        ran = f"Running stage '{name}'" in (root / stage_log(name)).read_text(errors="replace")
        print(f"  {'done' if ran else 'same'}   {name} ({minutes:.1f} min)", flush=True)

    watchdog = _Watchdog()
    try:
        done, failed = schedule(graph, alone, pending, jobs, launch, finished, poll_seconds, lambda: signals.count)
    finally:
        watchdog.close()  # any stage still running (pkd repro failed itself) is stopped by it
    stop_if_signalled(failed, len(pending) - len(done) - len(failed))
    if failed:
        print(_tail(root / stage_log(failed[0])), file=sys.stderr)
        raise PKDError(f"stage {failed[0]} failed (its log above, in full in {stage_log(failed[0])})")
    return done


def schedule(
    graph: dict[str, set[str]], alone: set[str], pending: set[str], jobs: int,
    launch: Callable[[str], Any], finished: Callable[[str, int, float], None], poll_seconds: float = 0.5,
    stops: Callable[[], int] = lambda: 0,
) -> tuple[list[str], list[str]]:
    """Start each pending stage once none of its upstream stages is pending or running,
    at most `jobs` at a time; a stage in `alone` runs with nothing beside it. `launch`
    returns a handle with Popen's `poll()` and StageProcess's `interrupt(force)`. Returns
    (succeeded, failed) in finishing order; after a failure nothing new starts. `stops`
    counts the stop requests (signals) so far: from the first, nothing new starts and each
    running stage's `interrupt` is called at every poll, with force from the second."""
    pending = set(pending)
    order = list(graph)  # DVC's index order: stable, so runs are reproducible
    running: dict[str, tuple[Any, float]] = {}
    succeeded: list[str] = []
    failed: list[str] = []
    while (pending and not failed and not stops()) or running:
        if stopping := stops():
            for proc, _ in running.values():
                proc.interrupt(force=stopping > 1)
        blocked = pending | set(running)
        ready = [] if stopping else [s for s in order if s in pending and not (graph[s] & blocked)]
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
    try:
        ran = run_parallel(jobs)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_status)
    print(f"pkd repro: {len(ran)} stage(s) brought up to date in {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr)
