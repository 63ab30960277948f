"""Output paths and names: each format is written and read back in one module."""
import pytest

from pkd.pipeline import paths


@pytest.mark.parametrize("strategy, depth, seed", [("kd", 3, 42), ("pkd_skip", 12, 0), ("pkd_first", 2, 7)])
def test_a_student_name_reads_back(strategy, depth, seed):
    assert paths.parse_student_name(paths.student_name(strategy, depth, seed)) == (strategy, depth, seed)


def test_names_that_are_not_students():
    assert paths.parse_student_name("kd-3") == ("kd", 3, None)  # written before seeds
    assert paths.parse_student_name("teacher") is None
    assert paths.parse_student_name("kd-three-s1") is None


def test_an_evaluation_path_reads_back():
    assert paths.parse_evaluation(paths.evaluation("rte", "ft-2-s7")) == ("rte", "ft-2-s7")
    assert paths.parse_evaluation("metrics/train/rte/ft-2-s7.json") is None
