"""The evaluation record: what the evaluate stage writes is what the report and the sweep table read."""
import pytest

from pkd.data import get_task
from pkd.errors import MetricsError
from pkd.evaluation.schema import evaluation_record, read_evaluation, restore_from_exp_show
from pkd.pipeline import paths


def _record(strategy="kd", depth=3, seed=42, model=None):
    return evaluation_record(
        task=get_task("builtin_sentiment"), model=model or paths.student_name(strategy, depth, seed),
        strategy=strategy, seed=seed, depth=depth, teacher_depth=6, precision="fp32",
        splits={"dev": {"accuracy": 0.8, "n": 500}})


def test_a_written_record_reads_back_at_its_path():
    record = _record()
    read = read_evaluation(record, paths.evaluation("builtin_sentiment", "kd-3-s42"))
    assert (read["strategy"], read["depth"], read["seed"], read["role"]) == ("kd", 3, 42, "student")
    teacher = evaluation_record(task=get_task("builtin_sentiment"), model="teacher", strategy=None, seed=42,
                                depth=6, teacher_depth=6, precision="fp32", splits={"dev": {"accuracy": 0.9}})
    assert read_evaluation(teacher, paths.evaluation("builtin_sentiment", "teacher"))["strategy"] is None


@pytest.mark.parametrize("path, data, message", [
    ("metrics/eval/builtin_sentiment/kd-2-s42.json", _record(), "the path says"),
    ("metrics/eval/builtin_sentiment/nope-3-s42.json", _record("nope"), "unknown strategy 'nope'"),
    ("metrics/eval/builtin_sentiment/kd-3-s42.json", {"task": "builtin_sentiment"}, "missing key"),
])
def test_a_record_that_disagrees_with_its_path_or_the_registry_is_refused(path, data, message):
    with pytest.raises(MetricsError, match=message):
        read_evaluation(data, path)


def test_a_record_from_dvc_exp_show_is_made_whole():
    """DVC's metrics reader drops lists and nulls: metric_names and a teacher's strategy."""
    record = _record()
    shown = {k: v for k, v in record.items() if k != "metric_names"}
    restored = restore_from_exp_show(shown)
    assert restored["metric_names"] == ["accuracy"] and restored["strategy"] == "kd"
    assert restore_from_exp_show({"task": "t"})["strategy"] is None
