"""The strategy registry, and the extension path: a strategy defined here, trained through the library."""
import copy

import pytest
import yaml
from conftest import ROOT
from transformers import DataCollatorWithPadding

from pkd.cache.build import build_teacher_cache
from pkd.data import get_task
from pkd.method import strategies as registry
from pkd.models.loading import build_teacher, load_classifier, load_tokenizer
from pkd.pipeline.params import ConfigError, parse_params
from pkd.pipeline.paths import parse_student_name
from pkd.report.tables import table1_main  # noqa: F401  (the report reads the registry: imported with it)
from pkd.training.distill import loss_config, plan_student, train_student
from pkd.training.train import train_model

TASK = get_task("builtin_sentiment")
DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())


def first_layers(teacher_depth: int, student_depth: int) -> list[int]:
    """Student layer j learns from teacher layer j: the bottom of the teacher."""
    return list(range(1, student_depth))


@pytest.fixture
def pkd_first():
    strategy = registry.register(registry.Strategy("pkd_first", "PKD-First", soft_labels=True, layers=first_layers))
    yield strategy
    registry.unregister("pkd_first")


def params_with(tiny_bert, strategies, **knobs):
    raw = copy.deepcopy(DEFAULTS)
    raw["teacher"]["checkpoint"] = str(tiny_bert)
    raw["student"].update(depths=[2], strategies=strategies, epochs=1, train_eval_samples=16, seeds=[0])
    del raw["student"]["finetune_strategies"], raw["student"]["distill_strategies"]  # derived from the list
    raw["strategies"].update(knobs)
    return parse_params(raw)


def test_the_paper_strategies_are_registered_with_their_terms():
    assert registry.names()[:4] == ("ft", "kd", "pkd_skip", "pkd_last")
    ft, kd, skip = (registry.get_strategy(n) for n in ("ft", "kd", "pkd_skip"))
    assert not ft.reads_teacher and kd.soft_labels and not kd.patient and skip.patient
    assert skip.teacher_layers(12, 6) == [2, 4, 6, 8, 10]
    assert registry.get_strategy("pkd_last").teacher_layers(12, 6) == [7, 8, 9, 10, 11]
    with pytest.raises(ConfigError, match="unknown strategy 'tinybert'; allowed: ft, kd, pkd_skip, pkd_last"):
        registry.get_strategy("tinybert")


def test_a_layer_map_that_breaks_the_rules_is_refused(pkd_first):
    broken = registry.Strategy("broken", "Broken", soft_labels=True, layers=lambda n, m: [n] * (m - 1))
    with pytest.raises(ConfigError, match=r"strategy 'broken': its layer map gave \[4\]"):
        broken.teacher_layers(4, 2)
    with pytest.raises(ConfigError, match="a PKD student needs at least 2 layers"):
        pkd_first.teacher_layers(4, 1)


def test_config_checks_a_strategy_against_its_loss_terms(tiny_bert, pkd_first):
    knobs = {"pkd_first": {"alpha": 0.5, "beta": 10.0, "temperature": 5.0}}
    params = params_with(tiny_bert, ["ft", "pkd_first"], **knobs)
    assert params.student.distill_strategies == ["pkd_first"]
    loss = loss_config(params, "pkd_first", TASK.name, 2, teacher_depth=4)
    assert loss.matched_layers == (1,) and loss.distills and loss.normalize_patience
    registry.register(registry.Strategy("pkd_first", "PKD-First", soft_labels=False, layers=first_layers))
    with pytest.raises(ConfigError, match="strategies.pkd_first.alpha: PKD-First has no soft-label loss"):
        params_with(tiny_bert, ["pkd_first"], **knobs)


def test_a_strategy_registered_here_trains_a_student_through_the_library(tiny_bert, tiny_splits, tmp_path, pkd_first):
    """The README's "Add your own strategy": register, list it in params, and the library trains it."""
    params = params_with(tiny_bert, ["pkd_first"], pkd_first={"alpha": 0.5, "beta": 100.0, "temperature": 5.0})
    prepared = tmp_path / "prepared"
    tiny_splits.save_to_disk(str(prepared))
    tokenizer = load_tokenizer(str(tiny_bert))
    teacher_dir, cache_dir = tmp_path / "teacher", tmp_path / "cache"
    train_model(build_teacher(str(tiny_bert), TASK, pooling=params.pooling), tokenizer, task=TASK,
                train=tiny_splits["train"], dev=tiny_splits["dev"], params=params.teacher.model_copy(update={"epochs": 1}),
                learning_rate=1e-3, seed=0, checkpoint_dir=tmp_path / "ckpt-t", model_out=teacher_dir,
                history_out=tmp_path / "teacher.json")
    layers = params.patient_layers(teacher_depth=4)
    assert layers == [1]  # what the cache must hold for this strategy
    build_teacher_cache(load_classifier(teacher_dir), TASK, tiny_splits, DataCollatorWithPadding(tokenizer), cache_dir,
                        teacher_dir=teacher_dir, layers=layers, dtype="float32")
    plan = plan_student(params, TASK, "pkd_first", 2, 0, splits=tiny_splits, prepared_dir=prepared,
                        teacher_dir=teacher_dir, cache_dir=cache_dir)
    assert plan.loss.matched_layers == (1,) and plan.cache is not None
    history = train_student(plan, params, tiny_splits, teacher_dir=teacher_dir, checkpoint_dir=tmp_path / "ckpt-s",
                            model_out=tmp_path / "student", history_out=tmp_path / "student.json")
    assert len(history) == 1 and history[0]["loss_pt"] > 0 and history[0]["loss_ds"] > 0
    assert (tmp_path / "student" / "config.json").is_file()
    assert parse_student_name("pkd_first-2-s0") == ("pkd_first", 2, 0)
    assert registry.label("pkd_first") == "PKD-First"
