"""Bad parameter values are refused before any work, with the key named."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pkd.data.sources import Source, register_source, unregister_source
from pkd.models.loading import check_depths
from pkd.pipeline.params import ConfigError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())
# data.inputs follows from data.tasks and the sources; the tests below change those.
DEFAULTS["data"].pop("inputs")


def with_value(dotted: str, value):
    raw = copy.deepcopy(DEFAULTS)
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def with_strategies(raw: dict, strategies: list[str]) -> dict:
    """Set student.strategies and let the per-stage split be derived from it."""
    raw["student"]["strategies"] = strategies
    raw["student"].pop("finetune_strategies", None)
    raw["student"].pop("distill_strategies", None)
    return raw


def test_default_params_are_valid():
    params = parse_params(DEFAULTS)
    assert params.data.source == "builtin"
    assert params.student_learning_rate("kd") == params.student.learning_rate


def test_cache_dtype_and_precision_defaults_agree_with_params_yaml():
    params = parse_params(DEFAULTS)
    assert params.teacher.cache_dtype == "float16" == type(params.teacher).model_fields["cache_dtype"].default
    assert params.precision == "fp32" == type(params).model_fields["precision"].default


def test_cached_layers_follow_the_strategies_and_depths_not_the_weights():
    """The cache stage's DVC inputs are student.depths and student.strategies: the stored
    layers must not change with a strategy's beta, or a beta sweep would need a rebuild."""
    layers = parse_params(DEFAULTS).patient_layers(teacher_depth=6)
    assert layers == [2, 3, 4, 5]  # PKD-Skip and PKD-Last at depths 3 and 2 of 6 layers
    for beta in (0.0, 500.0):
        raw = with_value("strategies.pkd_skip.beta", beta)
        assert parse_params(raw).patient_layers(teacher_depth=6) == layers, beta
    assert parse_params(with_strategies(copy.deepcopy(DEFAULTS), ["ft", "kd"])).patient_layers(6) == []
    # BERT-base, 6- and 3-layer students: skip 2,4,6,8,10 + 4,8; last 7..11 + 10,11.
    assert parse_params(with_value("student.depths", [6, 3])).patient_layers(12) == [2, 4, 6, 7, 8, 9, 10, 11]


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


def test_sources_come_from_the_registry():
    with pytest.raises(ConfigError) as err:
        parse_params(with_value("data.source", "s3"))
    assert str(err.value) == "data.source: unknown source 's3'; allowed: builtin, glue_dir, hub (got 's3')"
    raw = with_value("data.source", "hub")
    with pytest.raises(ConfigError, match=r"task 'builtin_sentiment' cannot be read from source 'hub' "
                                          r"\(built-in tasks need source: builtin\)"):
        parse_params(raw)
    raw["data"]["tasks"] = ["sst2"]
    assert parse_params(raw).data.source == "hub"
    # A source registered outside pkd/pipeline/params.py is accepted, and fits the tasks of its kind.
    register_source(Source("memory", "glue", lambda info, settings: None))
    try:
        raw = with_value("data.source", "memory")
        with pytest.raises(ConfigError, match=r"\(built-in tasks need source: builtin\)"):
            parse_params(raw)
        raw["data"]["tasks"] = ["sst2"]
        assert parse_params(raw).data.source == "memory"
        with pytest.raises(ConfigError, match=r"\(GLUE tasks need source: glue_dir or hub or memory\)"):
            parse_params({**raw, "data": {**raw["data"], "source": "builtin"}})
    finally:
        unregister_source("memory")


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
    raw = with_strategies(with_value("student.depths", depths), strategies)
    with pytest.raises(ConfigError, match=message):
        check_depths(parse_params(raw), teacher_depth=6)


def test_depth_one_is_fine_without_pkd():
    raw = with_strategies(with_value("student.depths", [1]), ["ft", "kd"])
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


def test_per_task_overrides_replace_epochs_and_learning_rate():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["per_task"] = {"builtin_pair": {"epochs": 5, "learning_rate": 1e-4}}
    raw["student"]["per_task"] = {"builtin_pair": {"learning_rate": 3e-4}}
    params = parse_params(raw)
    pair, other = params.teacher.for_task("builtin_pair"), params.teacher.for_task("builtin_sentiment")
    assert (pair.epochs, pair.learning_rate) == (5, 1e-4)
    assert (other.epochs, other.learning_rate) == (raw["teacher"]["epochs"], raw["teacher"]["learning_rate"])
    assert pair.batch_size == params.teacher.batch_size and pair.per_task == {}
    assert params.student.for_task("builtin_pair").epochs == params.student.epochs
    # precedence: the strategy's own rate, then the task's, then student.learning_rate
    assert params.student_learning_rate("kd", "builtin_pair") == 3e-4
    assert params.student_learning_rate("kd", "builtin_sentiment") == params.student.learning_rate
    raw["strategies"]["kd"]["learning_rate"] = 2e-5
    assert parse_params(raw).student_learning_rate("kd", "builtin_pair") == 2e-5


def test_per_task_override_of_an_unknown_task_is_refused():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["per_task"] = {"mrcp": {"epochs": 5}}
    with pytest.raises(ConfigError, match=r"teacher\.per_task: unknown task 'mrcp'"):
        parse_params(raw)


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 42\ndata:\n  tasks: [sst2, mrpc\n  source: hub\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:4:9: "):
        load_params(bad)


def test_stage_refuses_yaml_syntax_error_with_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 42\n  pooling: cls\n")
    proc = subprocess.run(
        [sys.executable, "stages/prepare.py", "--task", "builtin_sentiment"],
        cwd=ROOT, env={**__import__("os").environ, "PKD_PARAMS": str(bad)}, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:2:10: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_normalize_patience_resolves_per_task_and_depth():
    raw = with_value("student.normalize_patience_overrides", {"rte-3": False, "mnli": False, "sst2-6": False})
    student = parse_params(raw).student
    assert student.patience_normalized("rte", 3) is False  # task-depth key
    assert student.patience_normalized("rte", 6) is True  # default
    assert student.patience_normalized("mnli", 3) is student.patience_normalized("mnli", 6) is False  # task key
    assert student.patience_normalized("sst2", 6) is False and student.patience_normalized("sst2", 3) is True
    raw["student"]["normalize_patience"] = False
    raw["student"]["normalize_patience_overrides"] = {"sst2": True, "sst2-3": False}
    student = parse_params(raw).student
    assert student.patience_normalized("qqp", 3) is False
    assert student.patience_normalized("sst2", 6) is True and student.patience_normalized("sst2", 3) is False


@pytest.mark.parametrize("overrides, expected", [
    ({"sst3": False}, "unknown task 'sst3'"),
    ({"rte-x": False}, "unknown task 'rte-x'"),
    ({"rte-0": False}, "depth"),
    ({"rte-3": "maybe"}, "student.normalize_patience_overrides"),
])
def test_bad_normalize_patience_overrides_are_refused(overrides, expected):
    with pytest.raises(ConfigError, match="student.normalize_patience_overrides") as err:
        parse_params(with_value("student.normalize_patience_overrides", overrides))
    assert expected in str(err.value)


def test_distill_stage_depends_on_the_per_task_normalisation():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "student.normalize_patience_overrides" in stages["distill"]["params"]
    assert "normalize_patience_overrides" in DEFAULTS["student"]
    assert "patience_normalized(" in (ROOT / "pkd/training/distill.py").read_text().split("def loss_config")[1]
def test_strategies_split_by_stage_follows_what_reads_the_teacher():
    student = parse_params(with_strategies(copy.deepcopy(DEFAULTS), ["kd", "ft"])).student
    assert (student.finetune_strategies, student.distill_strategies) == (["ft"], ["kd"])
    raw = with_strategies(with_value("student.init", "finetuned"), ["ft", "kd"])
    assert parse_params(raw).student.distill_strategies == ["ft", "kd"]  # FT starts from the teacher


@pytest.mark.parametrize(
    "key, value",
    [("student.finetune_strategies", []), ("student.distill_strategies", ["kd", "pkd_skip", "pkd_last", "ft"])],
)
def test_strategies_split_must_match_the_strategies(key, value):
    with pytest.raises(ConfigError, match=key.split(".")[1] + ": must list"):
        parse_params(with_value(key, value))
    with pytest.raises(ConfigError, match="finetune_strategies"):  # init: finetuned moves ft to distill
        parse_params(with_value("student.init", "finetuned"))


def test_schema_defaults_are_the_params_yaml_values():
    """One set of defaults: a key left out of params.yaml means what params.yaml says."""
    from pkd.pipeline.params import Params

    def compare(model_cls, values, where):
        for name, field in model_cls.model_fields.items():
            if name not in values:
                continue
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                compare(annotation, values[name], f"{where}{name}.")
                continue
            if field.is_required():
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                compare(type(default), values[name], f"{where}{name}.")
            elif name not in ("per_task", "normalize_patience_overrides", "finetune_strategies", "distill_strategies",
                              "tasks"):
                assert default == values[name], f"{where}{name}: schema default {default!r}, params.yaml {values[name]!r}"

    compare(Params, DEFAULTS, "")


def test_data_inputs_must_follow_the_tasks_and_their_sources(tmp_path):
    """dvc.yaml's prepare stages depend on data.inputs: a stale value would leave an edited file untracked."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert parse_params(raw).data.inputs == {t: "pkd/data/builtin.py" for t in raw["data"]["tasks"]}
    (tmp_path / "SST-2").mkdir()
    raw["data"].update(source="glue_dir", glue_dir=str(tmp_path), tasks=["sst2"])
    with pytest.raises(ConfigError, match=rf"^data\.inputs: must be \{{sst2: {tmp_path}/SST-2\}} .*pkd-preset --sync"):
        parse_params(raw)
    raw["data"]["inputs"] = {"sst2": f"{tmp_path}/SST-2"}
    assert parse_params(raw).data.inputs == {"sst2": f"{tmp_path}/SST-2"}


def test_export_tasks_follow_the_switch_and_name_the_command_that_fixes_them():
    assert parse_params(DEFAULTS).export.tasks == []  # off: dvc.yaml makes no export stage
    on = with_value("export.enabled", True)
    with pytest.raises(ConfigError) as err:  # `dvc exp run -S export.enabled=true` alone
        parse_params(on)
    message = str(err.value)
    assert message.startswith("export.tasks: must be data.tasks while export.enabled is true") and "\n" not in message
    assert "dvc exp run -S export.enabled=true -S 'export.tasks=[builtin_sentiment,builtin_pair]'" in message
    on["export"]["tasks"] = ["builtin_sentiment", "builtin_pair"]
    assert parse_params(on).export.tasks == ["builtin_sentiment", "builtin_pair"]
    with pytest.raises(ConfigError, match=r"export.tasks: must be \[\] while export.enabled is false"):
        parse_params(with_value("export.tasks", ["builtin_pair"]))
    del on["export"]["tasks"]  # absent: derived
    assert parse_params(on).export.tasks == ["builtin_sentiment", "builtin_pair"]


def test_params_are_read_as_yaml_1_2_as_dvc_and_pkd_preset_read_them(tmp_path):
    """A plain `no`/`yes`/`on` is a string in YAML 1.2 (DVC, ruamel); a YAML 1.1 reader would see booleans."""
    own = tmp_path / "own"
    own.mkdir()
    for split in ("train", "dev"):
        (own / f"{split}.csv").write_text("text,answer\nsure,yes\nnever,no\n")
    raw = copy.deepcopy(DEFAULTS)
    raw["data"].update(tasks=["answers"], custom_tasks={"answers": {
        "train": str(own / "train.csv"), "dev": str(own / "dev.csv"), "text": "text", "label": "answer",
        "labels": ["no", "yes"]}})
    text = yaml.safe_dump(raw, sort_keys=False).replace("- 'no'\n", "- no\n").replace("- 'yes'\n", "- yes\n")
    assert "- no\n" in text and "- yes\n" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").data.custom_task("answers").labels == ["no", "yes"]


def test_numbers_are_accepted_as_label_names():
    raw = copy.deepcopy(DEFAULTS)
    raw["data"].update(tasks=["levels"], custom_tasks={"levels": {
        "dataset": "some/hub-dataset", "train": "train", "dev": "dev", "text": "t", "label": "y", "labels": [0, 1, 2.0]}})
    assert parse_params(raw).data.custom_task("levels").labels == ["0", "1", "2"]
    raw["data"]["custom_tasks"]["levels"]["labels"] = [False, True]
    with pytest.raises(ConfigError, match=r"^data\.custom_tasks\.levels.*labels.*quote"):
        parse_params(raw)
