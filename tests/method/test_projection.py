"""PKD across widths with a learned projection (strategies.<name>.projection, an extension):
it trains with the student, is never saved with it, and is labelled as what it is."""
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ROOT
from safetensors.torch import load_file
from tiny_models import save_tiny_bert, teacher_outputs, write_cache
from transformers import DataCollatorWithPadding, TrainingArguments

from pkd.cache.format import dataset_fingerprint, load_cache, teacher_hash
from pkd.data import get_task
from pkd.errors import ConfigError
from pkd.method import strategies as registry
from pkd.method.losses import LossConfig
from pkd.method.pooling import pool
from pkd.method.projection import ATTRIBUTE, LayerProjection
from pkd.method.trainer import DistillationTrainer
from pkd.models.loading import (
    build_student,
    build_teacher,
    check_student_init,
    load_classifier,
    load_tokenizer,
)
from pkd.pipeline.params import TrainParams, parse_params
from pkd.training.train import train_model

TASK = get_task("builtin_sentiment")
PROJECTED = LossConfig(alpha=0.5, beta=100.0, temperature=10.0, matched_layers=(2,), projection=True)


@pytest.fixture(scope="module")
def wide_teacher(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-48"), layers=4, hidden=48)


def test_each_layer_has_its_own_linear_map():
    projection = LayerProjection(layers=2, student_width=3, teacher_width=5)
    states = torch.randn(4, 2, 3)
    out = projection(states)
    assert out.shape == (4, 2, 5)
    for i, linear in enumerate(projection.maps):
        torch.testing.assert_close(out[:, i], states[:, i] @ linear.weight.T + linear.bias)
    assert not torch.allclose(projection.maps[0].weight, projection.maps[1].weight)


def test_the_patient_loss_goes_through_the_projection(tiny_bert, tmp_path):
    """L_PT computed here from the student's own states, the projection's weights and the
    teacher rows: MSE(normalise(W h + b), normalise(t))."""
    student = build_student(str(tiny_bert), 3, TASK, seed=0)
    for module in student.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    teacher_states = torch.randn(2, 2, 48, generator=torch.Generator().manual_seed(0))

    class Cache:
        hidden_size = 48

        def require_pooling(self, pooling):
            pass

        def require_layers(self, layers):
            pass

        def rows(self, idx, layers):
            return torch.zeros(len(idx), TASK.num_labels), teacher_states[idx]

    trainer = DistillationTrainer(
        model=student.train(), args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        cache=Cache(), loss=LossConfig(alpha=0.5, beta=1.0, temperature=2.0, matched_layers=(2, 4), projection=True),
    )
    projection = getattr(student, ATTRIBUTE)
    assert [tuple(m.weight.shape) for m in projection.maps] == [(48, 32), (48, 32)]
    ids = torch.tensor([[101, 2023, 3185, 2001, 2307, 102], [101, 6659, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([1, 0]), "idx": torch.tensor([0, 1])}
    with torch.no_grad():
        trainer.compute_loss(student, dict(inputs))
        hidden = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        projected = torch.stack([projection.maps[j - 1](pool(hidden[j], mask, "cls")) for j in (1, 2)], dim=1)
        expected = F.mse_loss(F.normalize(projected, dim=-1), F.normalize(teacher_states, dim=-1))
    assert trainer.loss_sums["pt"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_32_wide_student_learns_from_a_48_wide_teacher_and_is_saved_without_the_projection(
        wide_teacher, tiny_bert, tiny_splits, tmp_path):
    tokenizer = load_tokenizer(str(tiny_bert))
    teacher = build_teacher(str(wide_teacher), TASK).eval()
    teacher.save_pretrained(tmp_path / "teacher")
    outputs = teacher_outputs(teacher, tiny_splits["train"], DataCollatorWithPadding(tokenizer), layers=[2])
    manifest = {"teacher_sha256": teacher_hash(tmp_path / "teacher"), "layers": 4,
                "data_fingerprint": {"train": dataset_fingerprint(tiny_splits["train"])}}
    write_cache(tmp_path / "cache", {"train": outputs}, manifest, "float32", layers=[2])
    cache = load_cache(tmp_path / "cache", "train", dataset=tiny_splits["train"], teacher_dir=tmp_path / "teacher")
    assert cache.hidden_size == 48

    history = train_model(
        build_student(str(tiny_bert), 2, TASK, seed=0), tokenizer, task=TASK, train=tiny_splits["train"],
        dev=tiny_splits["dev"], params=TrainParams(epochs=4, batch_size=16, learning_rate=1e-3, train_eval_samples=16),
        learning_rate=1e-3, seed=0, checkpoint_dir=tmp_path / "ckpt", model_out=tmp_path / "student",
        history_out=tmp_path / "student.json", loss=PROJECTED, cache=cache,
    )
    patient = [h["loss_pt"] for h in history]
    assert len(patient) == 4 and patient[-1] < 0.7 * patient[0], patient
    saved = load_file(str(tmp_path / "student/model.safetensors"))
    assert not any(ATTRIBUTE in key for key in saved) and any(key.startswith("bert.") for key in saved)
    reloaded = load_classifier(tmp_path / "student")  # strict: any extra or missing key would be refused
    assert reloaded.config.hidden_size == 32 and not hasattr(reloaded, ATTRIBUTE)


def _params(teacher, init, strategies=("kd", "pkd_skip"), **pkd_skip) -> object:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["checkpoint"] = str(teacher)
    raw["student"].update(init_checkpoint=str(init), depths=[2], strategies=list(strategies),
                          finetune_strategies=[], distill_strategies=list(strategies))
    raw["strategies"]["pkd_skip"].update(pkd_skip)
    return parse_params(raw)


def test_across_widths_pkd_is_refused_as_before_unless_the_projection_is_on(wide_teacher, tiny_bert):
    with pytest.raises(ConfigError, match=r"'pkd_skip' matches hidden states, but teacher.checkpoint '.*' has "
                                          r"hidden size 48 and student.init_checkpoint '.*' has 32; PKD needs equal sizes"):
        check_student_init(_params(wide_teacher, tiny_bert))
    check_student_init(_params(wide_teacher, tiny_bert, projection=True))
    with pytest.raises(ConfigError, match="'pkd_last' matches hidden states"):  # its own switch is off
        check_student_init(_params(wide_teacher, tiny_bert, ("kd", "pkd_skip", "pkd_last"), projection=True))


def test_projection_is_only_for_patient_strategies_and_shows_in_the_label():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["strategies"]["kd"]["projection"] = True
    with pytest.raises(ConfigError, match="strategies.kd.projection: KD has no patient loss"):
        parse_params(raw)
    assert registry.label("pkd_skip", projected=True) == "PKD-Skip + proj"
    assert registry.label("pkd_skip") == "PKD-Skip" and registry.label("kd") == "KD"


def test_params_yaml_spells_out_the_switch_so_that_dvc_exp_run_can_set_it():
    """`dvc exp run -S strategies.pkd_skip.projection=true` refuses a key params.yaml lacks
    ("Key 'projection' is not in struct"): every patient strategy must list it."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    patient = [name for name in raw["strategies"] if registry.get_strategy(name).patient]
    assert patient and all(raw["strategies"][name].get("projection") is False for name in patient)
