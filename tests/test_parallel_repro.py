"""The scheduling rules of `pkd repro --jobs N` (pkd/parallel_repro.py); its end-to-end run is in
tests/test_pipeline.py."""
import pytest

from pkd.errors import PKDError
from pkd.parallel_repro import run_parallel, stages_to_run

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
