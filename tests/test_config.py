"""Bad parameter values are refused before any work, with the key named."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pkd.config import ConfigError, check_depths, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_value(dotted: str, value):
    raw = copy.deepcopy(DEFAULTS)
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_default_params_are_valid():
    params = parse_params(DEFAULTS)
    assert params.data.source == "builtin"
    assert params.student_learning_rate("kd") == params.student.learning_rate


def test_cache_dtype_and_precision_defaults_agree_with_params_yaml():
    params = parse_params(DEFAULTS)
    assert params.teacher.cache_dtype == "float16" == type(params.teacher).model_fields["cache_dtype"].default
    assert params.precision == "fp32" == type(params).model_fields["precision"].default


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("strategies.kd.alpha", 1.5, "strategies.kd.alpha"),
        ("strategies.pkd_skip.alpha", -0.1, "strategies.pkd_skip.alpha"),
        ("strategies.pkd_skip.beta", -1, "strategies.pkd_skip.beta"),
        ("strategies.kd.temperature", 0, "strategies.kd.temperature"),
        ("strategies.pkd_last.temperature", -5, "strategies.pkd_last.temperature"),
        ("student.learning_rate", 0, "student.learning_rate"),
        ("teacher.learning_rate", -1e-5, "teacher.learning_rate"),
        ("strategies.kd.learning_rate", 0.0, "strategies.kd.learning_rate"),
        ("student.epochs", "three", "student.epochs"),
        ("student.batch_size", 3.5, "student.batch_size"),
        ("data.tasks", ["sst2x"], "unknown task 'sst2x'"),
        ("data.tasks", ["sst2"], "cannot be read from source 'builtin'"),
        ("data.source", "s3", "data.source"),
        ("student.strategies", ["ft", "pkd_middle"], "unknown strategy 'pkd_middle'"),
        ("student.depths", [3, 0], "student.depths"),
        ("student.init", "random", "student.init"),
        ("student.kd_reduction", "sum", "student.kd_reduction"),
        ("strategies.ft.alpha", 0.5, "strategies.ft"),
        ("strategies.kd.beta", 10.0, "strategies.kd.beta"),
        ("data.max_seq_length", 0, "data.max_seq_length"),
        ("teacher.cache_dtype", "int8", "teacher.cache_dtype"),
        ("precision", "fp8", "precision"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key, value, expected):
    with pytest.raises(ConfigError) as err:
        parse_params(with_value(key, value))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_keys_are_refused():
    raw = copy.deepcopy(DEFAULTS)
    raw["student"]["epocs"] = 3
    with pytest.raises(ConfigError, match="student.epocs"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULTS)
    raw["strategies"]["pkd_middle"] = {"alpha": 0.5, "beta": 10, "temperature": 5}
    with pytest.raises(ConfigError, match="pkd_middle"):
        parse_params(raw)


def test_missing_glue_dir_is_refused(tmp_path):
    raw = with_value("data.source", "glue_dir")
    raw["data"]["tasks"] = ["sst2"]
    raw["data"]["glue_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="glue_dir: directory .*nowhere.* does not exist"):
        parse_params(raw)
    raw["data"]["glue_dir"] = str(tmp_path)
    assert parse_params(raw).data.glue_dir == str(tmp_path)


@pytest.mark.parametrize("value", [0.2, 0.5, 0.7])
def test_paper_grid_values_are_accepted(value):
    raw = with_value("strategies.pkd_skip.alpha", value)
    for beta in (10, 100, 500, 1000):
        raw["strategies"]["pkd_skip"]["beta"] = beta
        for temperature in (5, 10, 20):
            raw["strategies"]["pkd_skip"]["temperature"] = temperature
            parse_params(raw)


@pytest.mark.parametrize(
    "depths, strategies, message",
    [
        ([6], ["ft"], "depth 6 is not smaller than the 6-layer teacher"),
        ([3, 8], ["ft"], "depth 8"),
        ([1], ["kd", "pkd_skip"], "needs depth >= 2"),
    ],
)
def test_depth_rules_need_the_teacher_depth(depths, strategies, message):
    raw = with_value("student.depths", depths)
    raw["student"]["strategies"] = strategies
    with pytest.raises(ConfigError, match=message):
        check_depths(parse_params(raw), teacher_depth=6)


def test_depth_one_is_fine_without_pkd():
    raw = with_value("student.depths", [1])
    raw["student"]["strategies"] = ["ft", "kd"]
    check_depths(parse_params(raw), teacher_depth=6)


def test_load_params_names_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(with_value("strategies.kd.alpha", 2)))
    with pytest.raises(ConfigError, match=f"{bad}: strategies.kd.alpha"):
        load_params(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_stage_refuses_bad_params_with_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(with_value("strategies.kd.alpha", 1.5)))
    proc = subprocess.run(
        [sys.executable, "stages/prepare.py", "--task", "builtin_sentiment"],
        cwd=ROOT, env={**__import__("os").environ, "PKD_PARAMS": str(bad)}, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "strategies.kd.alpha" in lines[0] and "Traceback" not in proc.stderr
