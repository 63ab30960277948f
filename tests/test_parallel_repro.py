"""The scheduling rules of `pkd repro --jobs N` (pkd/parallel_repro.py); its end-to-end run is in
tests/test_pipeline.py."""
import pytest

from pkd.errors import PKDError
from pkd.parallel_repro import run_parallel, schedule, stages_to_run

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
