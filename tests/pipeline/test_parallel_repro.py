"""The scheduling rules of `pkd repro --jobs N` (pkd/pipeline/parallel_repro.py); its end-to-end run is in
tests/test_pipeline.py."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT

from pkd.errors import PKDError
from pkd.pipeline.parallel_repro import reset_broken_rwlock, run_parallel, schedule, stages_to_run

# prepare -> teacher -> cache -> {kd, skip} -> evaluate -> report; prepare -> timing -> report
GRAPH = {
    "prepare": set(), "teacher": {"prepare"}, "cache": {"teacher"}, "kd": {"cache"}, "skip": {"cache"},
    "ft": {"prepare"}, "evaluate": {"kd", "skip", "ft"}, "timing": {"prepare"}, "report": {"evaluate", "timing"},
}


def test_a_changed_stage_takes_everything_downstream_and_nothing_upstream():
    assert stages_to_run(GRAPH, {"cache"}) == {"cache", "kd", "skip", "evaluate", "report"}
    assert stages_to_run(GRAPH, {"ft", "timing"}) == {"ft", "timing", "evaluate", "report"}
    assert stages_to_run(GRAPH, set()) == set()
    assert stages_to_run(GRAPH, {"a/foreign.dvc"}) == set()  # not a pipeline stage


def test_jobs_below_one_are_refused():
    with pytest.raises(PKDError, match="--jobs must be at least 1"):
        run_parallel(0)


class FakeStage:
    """A stage that finishes on its `polls`-th poll with `returncode`, logging what ran beside it."""

    def __init__(self, name, world, polls=2, returncode=0):
        self.name, self.world, self.polls, self.returncode = name, world, polls, returncode

    def poll(self):
        self.polls -= 1
        if self.polls > 0:
            return None
        self.world["running"].discard(self.name)
        return self.returncode


def run_fake(pending, jobs, alone=frozenset(), fail=(), polls=None):
    world = {"running": set(), "started": [], "beside": {}}

    def launch(name):
        world["beside"][name] = set(world["running"])
        for other in world["running"]:
            world["beside"][other].add(name)
        world["running"].add(name)
        world["started"].append(name)
        return FakeStage(name, world, (polls or {}).get(name, 2), 1 if name in fail else 0)

    done, failed = schedule(GRAPH, set(alone), set(pending), jobs, launch, lambda *a: None, poll_seconds=0)
    return done, failed, world


def test_no_stage_starts_before_its_upstream_finished_and_jobs_bound_concurrency():
    done, failed, world = run_fake(set(GRAPH), jobs=2)
    assert failed == [] and sorted(done) == sorted(GRAPH)
    for name, upstream in GRAPH.items():
        assert all(done.index(up) < world["started"].index(name) for up in upstream), name
    assert max(len(b) for b in world["beside"].values()) == 1  # two at a time, never three
    assert any(world["beside"].values())  # and some did run two at a time


def test_a_run_alone_stage_has_nothing_beside_it():
    done, _, world = run_fake(set(GRAPH), jobs=2, alone={"timing"}, polls={"teacher": 6})
    assert "timing" in done and world["beside"]["timing"] == set()


def test_after_a_failure_nothing_new_starts_and_running_stages_finish():
    done, failed, world = run_fake(set(GRAPH), jobs=2, fail={"cache"}, polls={"ft": 9})
    assert failed == ["cache"]
    assert "ft" in done  # was running when cache failed
    assert not {"kd", "skip", "evaluate", "report"} & set(world["started"])


def test_after_a_stop_nothing_new_starts_and_running_stages_are_interrupted_and_awaited():
    world = {"running": set(), "started": [], "interrupted": []}

    class Interruptible(FakeStage):
        def interrupt(self, force):
            world["interrupted"].append((self.name, force))
            self.polls = min(self.polls, 2)  # it takes a poll to clean up

    def launch(name):
        world["running"].add(name)
        world["started"].append(name)
        return Interruptible(name, world, polls=50)

    signals = iter([0, 0, 1])  # the stop arrives after the first two stages started

    def stops():
        return next(signals, 1)

    done, failed = schedule(GRAPH, set(), set(GRAPH), 2, launch, lambda *a: None, 0, stops)
    assert world["started"] == ["prepare"]
    assert world["interrupted"][0] == ("prepare", False) and done == ["prepare"] and failed == []
    assert world["running"] == set()


# A stand-in for `dvc`: `status --json` reports every stage changed, and `repro --single-item
# NAME` runs tests' sleeper as its command the way DVC does (ignoring SIGINT while it runs).
FAKE_DVC = """#!{python}
import json, signal, subprocess, sys
if sys.argv[1] == "status":
    print(json.dumps({{"a": [], "b": [], "c": []}}))
    sys.exit(0)
name = sys.argv[-1]
command = subprocess.Popen([sys.executable, {sleeper!r}, name])
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(1 if command.wait() else 0)
"""
SLEEPER = """import os, signal, sys, time
name = sys.argv[1]
def record(signum, frame):
    open(name + ".signal", "w").write(signal.Signals(signum).name)
    sys.exit(1)
signal.signal(signal.SIGINT, record)
signal.signal(signal.SIGTERM, record)
open(name + ".started", "w").write(str(os.getpid()))
time.sleep(60)
"""


@pytest.fixture
def fake_project(tmp_path):
    """A DVC project a -> c <- b whose `dvc` is FAKE_DVC: pkd repro's own logic, real processes."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc/config").write_text("[core]\n    no_scm = true\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  a: {cmd: x, outs: [a.txt]}\n  b: {cmd: x, outs: [b.txt]}\n"
        "  c: {cmd: x, deps: [a.txt, b.txt], outs: [c.txt]}\n")
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dvc").write_text(FAKE_DVC.format(python=sys.executable, sleeper=str(tmp_path / "sleeper.py")))
    (bin_dir / "dvc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    return tmp_path, env


def start_repro(root, env, sighup=signal.SIG_DFL):
    # Its own session, as a shell's job: killpg then reaches it as a terminal's Ctrl-C does. SIGHUP as
    # an interactive shell leaves it (SIG_DFL), however the tests themselves run (under nohup: SIG_IGN).
    return subprocess.Popen([sys.executable, "-m", "pkd.cli.main", "repro", "--jobs", "2"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, sighup))


def wait_for(*paths, timeout=60):
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"{paths} did not appear"
        time.sleep(0.1)


@pytest.mark.parametrize("signum, how, status", [
    (signal.SIGINT, "terminal", 130),  # Ctrl-C: the terminal signals the whole foreground group
    (signal.SIGTERM, "process", 143),  # kill PID
    (signal.SIGHUP, "process", 129),  # a closed terminal, a dropped SSH session
])
def test_a_signal_stops_the_running_stages_cleanly_and_says_how_to_resume(fake_project, signum, how, status):
    root, env = fake_project
    proc = start_repro(root, env)
    try:
        wait_for(root / "a.started", root / "b.started")
        (os.killpg if how == "terminal" else os.kill)(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, out + err
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and "a, b" in last and "pkd repro --jobs 2" in last, err
    # Each stage's command got SIGINT from pkd repro (not the terminal's straight to DVC), cleaned up
    # and exited before pkd repro did; nothing new started.
    for name in "ab":
        assert (root / f"{name}.signal").read_text() == "SIGINT"
        assert not psutil.pid_exists(int((root / f"{name}.started").read_text()))
    assert not (root / "c.started").exists()
    assert "stopped" in out and "FAILED" not in out


def test_under_nohup_a_hangup_leaves_the_stages_running(fake_project):
    """nohup asks to run on when the terminal closes: SIGHUP stops nothing; SIGTERM still does."""
    root, env = fake_project
    proc = start_repro(root, env, sighup=signal.SIG_IGN)
    try:
        wait_for(root / "a.started", root / "b.started")
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None and not list(root.glob("*.signal"))
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out + err
    assert {(root / f"{name}.signal").read_text() for name in "ab"} == {"SIGINT"}


def test_stages_stop_when_pkd_repro_is_killed_outright(fake_project):
    """SIGKILL cannot be caught: a watchdog that outlives pkd repro stops its stages, as a Ctrl-C would."""
    root, env = fake_project
    proc = start_repro(root, env)
    pids = []
    try:
        wait_for(root / "a.started", root / "b.started")
        pids = [int((root / f"{name}.started").read_text()) for name in "ab"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 30
        while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name, pid in zip("ab", pids):
            assert not psutil.pid_exists(pid), f"stage {name} outlived pkd repro"
            assert (root / f"{name}.signal").read_text() == "SIGINT"
        assert not (root / "c.started").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


def test_pkd_repro_refuses_to_start_beside_a_dvc_repro_still_running_here(fake_project):
    """What a pkd repro killed without its watchdog leaves: stages still running, their outputs locked."""
    root, env = fake_project
    nested = root / "nested"  # its own DVC repository: not this one's business
    (nested / ".dvc").mkdir(parents=True)
    stray = [subprocess.Popen([sys.executable, str(root / "bin/dvc"), "repro", "--single-item", "a"], cwd=cwd, env=env)
             for cwd in (root, nested)]
    try:
        wait_for(root / "a.started", nested / "a.started")
        proc = subprocess.run([sys.executable, "-m", "pkd.cli.main", "repro", "--jobs", "2"], check=False, cwd=root,
                              env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PID {stray[0].pid}" in lines[0] and str(stray[1].pid) not in lines[0], lines
        assert "repro --single-item a" in lines[0] and not (root / "b.started").exists()
    finally:
        for dvc, cwd in zip(stray, (root, nested)):
            dvc.kill()
            if (cwd / "a.started").exists():
                os.kill(int((cwd / "a.started").read_text()), signal.SIGKILL)
            dvc.wait()


def write_rwlock(root, text):
    (root / ".dvc/tmp").mkdir(parents=True, exist_ok=True)
    (root / ".dvc/tmp/rwlock").write_text(text)


def test_an_unreadable_rwlock_is_removed_when_no_dvc_runs_here(fake_project, capsys):
    root, _ = fake_project
    write_rwlock(root, "")  # what an interrupted write leaves
    reset_broken_rwlock(root)
    assert not (root / ".dvc/tmp/rwlock").exists()
    assert ".dvc/tmp/rwlock" in capsys.readouterr().err
    write_rwlock(root, '{"write": {"a.txt": {"pid": 1, "cmd": "dvc repro"}}}')  # readable: DVC's own
    reset_broken_rwlock(root)
    assert (root / ".dvc/tmp/rwlock").exists()


def test_an_unreadable_rwlock_is_left_alone_while_dvc_runs_here(fake_project):
    root, env = fake_project
    write_rwlock(root, '{"write": {"a.txt": ')
    # A `dvc` process working in this repository (here: the fake one, running a stage).
    dvc = subprocess.Popen([sys.executable, str(root / "bin/dvc"), "repro", "--single-item", "a"], cwd=root, env=env)
    try:
        wait_for(root / "a.started")
        with pytest.raises(PKDError, match=rf"rwlock.*PID {dvc.pid}"):
            reset_broken_rwlock(root)
    finally:
        dvc.kill()
        os.kill(int((root / "a.started").read_text()), signal.SIGKILL)
        dvc.wait()
    assert (root / ".dvc/tmp/rwlock").read_text() == '{"write": {"a.txt": '


STEP = """import os, sys, time
from pathlib import Path
name, inputs = sys.argv[1], sys.argv[2:]
Path("started").mkdir(exist_ok=True)
Path("started", name).touch()
time.sleep(float(os.environ.get("STEP_SECONDS", 0)))
Path(name + ".txt").write_text(name + "".join(Path(i).read_text() for i in inputs))
"""
SLEEPY_PIPELINE = """stages:
  a: {cmd: python step.py a, deps: [step.py], outs: [a.txt]}
  b: {cmd: python step.py b, deps: [step.py], outs: [b.txt]}
  c: {cmd: python step.py c a.txt b.txt, deps: [step.py, a.txt, b.txt], outs: [c.txt]}
"""


def sleepy_repo(root):
    root.mkdir()
    (root / "step.py").write_text(STEP)
    (root / "dvc.yaml").write_text(SLEEPY_PIPELINE)
    (root / ".gitignore").write_text("started/\nruns/\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return env


def lock_outs(root):
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}


def test_ctrl_c_through_real_dvc_leaves_the_repository_usable_and_resumable(tmp_path):
    root = tmp_path / "interrupted"
    env = sleepy_repo(root)
    proc = start_repro(root, {**env, "STEP_SECONDS": "60"})  # stopped long before
    try:
        wait_for(root / "started/a", root / "started/b")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    status = subprocess.run(["dvc", "status"], check=False, cwd=root, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "changed" in status.stdout, status.stdout + status.stderr
    json.loads((root / ".dvc/tmp/rwlock").read_text())  # readable: no half-written lock file
    resumed = subprocess.run([sys.executable, "-m", "pkd.cli.main", "repro", "--jobs", "2"], check=False, cwd=root,
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "up to date" in subprocess.run(["dvc", "status"], check=False, cwd=root, env=env, capture_output=True, text=True).stdout
    plain = tmp_path / "plain"
    plain_env = sleepy_repo(plain)
    subprocess.run(["dvc", "repro"], cwd=plain, env=plain_env, check=True, capture_output=True)
    assert lock_outs(root) == lock_outs(plain) and len(lock_outs(root)) == 3
    assert (root / "c.txt").read_text() == "cab"


def test_the_watchdog_imports_the_pkd_it_was_started_from():
    from pkd.pipeline import parallel_repro

    root = parallel_repro.package_root()
    assert (root / "pkd" / "pipeline" / "parallel_repro.py").resolve() == Path(parallel_repro.__file__).resolve()
