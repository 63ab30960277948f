"""Teacher -> cache -> FT / KD / PKD-Skip / PKD-Last students on a tiny random BERT."""
import pytest
import torch
from transformers import DataCollatorWithPadding

from pkd.config import TrainParams
from pkd.data import get_task
from pkd.io import read_json
from pkd.layers import layer_map
from pkd.models import load_classifier, build_student, build_teacher, load_tokenizer
from pkd.teacher_cache import dataset_fingerprint, load_cache, teacher_hash, teacher_outputs, write_cache
from pkd.training import train_model

TASK = get_task("builtin_sentiment")
PARAMS = TrainParams(epochs=2, batch_size=16, learning_rate=1e-3, train_eval_samples=32)
STRATEGIES = {
    "ft": dict(alpha=0.0, beta=0.0, temperature=1.0),
    "kd": dict(alpha=0.7, beta=0.0, temperature=10.0),
    "pkd_skip": dict(alpha=0.7, beta=100.0, temperature=10.0),
    "pkd_last": dict(alpha=0.7, beta=100.0, temperature=10.0),
}


@pytest.fixture(scope="module")
def trained_teacher(tiny_bert, tiny_splits, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    tokenizer = load_tokenizer(str(tiny_bert))
    history = train_model(
        build_teacher(str(tiny_bert), TASK), tokenizer, task=TASK, train=tiny_splits["train"],
        dev=tiny_splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0,
        checkpoint_dir=root / "ckpt-teacher", model_out=root / "teacher", history_out=root / "teacher.json",
    )
    model = load_classifier(root / "teacher")
    outputs = teacher_outputs(model, tiny_splits["train"], DataCollatorWithPadding(tokenizer))
    manifest = {
        "teacher_sha256": teacher_hash(root / "teacher"),
        "data_fingerprint": {"train": dataset_fingerprint(tiny_splits["train"])},
    }
    write_cache(root / "cache", {"train": outputs}, manifest, "float32")
    return root, history


def test_teacher_history_has_train_and_dev_accuracy_per_epoch(trained_teacher):
    root, history = trained_teacher
    assert [h["epoch"] for h in history] == [1, 2]
    for record in history:
        assert 0 <= record["train_accuracy"] <= 1 and 0 <= record["dev_accuracy"] <= 1
    assert read_json(root / "teacher.json") == history
    assert (root / "teacher" / "config.json").exists()
    assert not (root / "ckpt-teacher").exists()  # checkpoints are removed after the final save


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_trains_with_its_loss_terms(strategy, trained_teacher, tiny_bert, tiny_splits):
    root, _ = trained_teacher
    weights = STRATEGIES[strategy]
    cache = None
    if weights["alpha"] > 0:
        cache = load_cache(root / "cache", "train", dataset=tiny_splits["train"], teacher_dir=root / "teacher")
    layers = layer_map(strategy.removeprefix("pkd_"), 4, 2) if weights["beta"] > 0 else None
    seen = []
    if cache is not None:  # record every lookup: each example must get its own teacher row
        original = cache.rows

        def recording_rows(idx, layers=None):
            logits, cls = original(idx, layers)
            seen.append((idx.clone(), logits.clone()))
            return logits, cls

        cache.rows = recording_rows
    history = train_model(
        build_student(str(tiny_bert), 2, TASK), load_tokenizer(str(tiny_bert)), task=TASK,
        train=tiny_splits["train"], dev=tiny_splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0,
        checkpoint_dir=root / f"ckpt-{strategy}", model_out=root / strategy, history_out=root / f"{strategy}.json",
        cache=cache, teacher_layers=layers, **weights,
    )
    assert len(history) == 2
    last = history[-1]
    assert last["loss_ce"] > 0
    assert (last["loss_ds"] > 0) == (weights["alpha"] > 0)
    assert (last["loss_pt"] > 0) == (weights["beta"] > 0)
    if cache is not None:
        full = load_cache(root / "cache", "train", dataset=tiny_splits["train"], teacher_dir=root / "teacher")
        by_idx = {int(i): full.logits[k] for k, i in enumerate(full.idx)}
        batches = [idx.tolist() for idx, _ in seen]
        assert sorted(i for b in batches[: len(batches) // 2] for i in b) == sorted(tiny_splits["train"]["idx"])
        assert batches[0] != sorted(batches[0]) or batches[0] != batches[len(batches) // 2]  # shuffled
        for idx, logits in seen:
            for i, row in zip(idx.tolist(), logits):
                assert torch.equal(row, by_idx[i])


def test_distillation_trainer_refuses_alpha_without_cache(tiny_bert, tiny_splits, tmp_path):
    with pytest.raises(ValueError, match="needs a teacher cache"):
        train_model(
            build_student(str(tiny_bert), 2, TASK), load_tokenizer(str(tiny_bert)), task=TASK,
            train=tiny_splits["train"], dev=tiny_splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0,
            checkpoint_dir=tmp_path / "c", model_out=tmp_path / "m", history_out=tmp_path / "h.json",
            alpha=0.5, temperature=5.0,
        )


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_patient_loss_reads_student_layers_1_to_m_minus_1(tiny_bert, tmp_path, pooling):
    """A stand-in cache hands back the student's own layers 1..M-1, computed here
    independently: the patient loss is then exactly 0, and any other choice of
    student layers (e.g. 0..M-2, off by one) makes it positive."""
    from transformers import TrainingArguments

    from pkd.distill import DistillationTrainer
    from pkd.pooling import pool

    depth = 3
    student = build_student(str(tiny_bert), depth, TASK, seed=0, pooling=pooling)
    for module in student.modules():  # deterministic train-mode forward
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a random tiny BERT barely changes its states from layer to layer: make each distinct
        for layer in student.bert.encoder.layer:
            layer.output.dense.bias.add_(3 * torch.randn(layer.output.dense.bias.shape, generator=generator))
    ids = torch.tensor([[101, 2023, 3185, 2001, 2307, 102], [101, 6659, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        hidden = student.eval()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    expected = torch.stack([pool(hidden[j], mask, pooling) for j in range(1, depth)], dim=1)  # [B, M-1, H]
    assert not torch.allclose(expected[:, 0], expected[:, 1])  # the layers are distinguishable

    class OwnLayersCache:
        def rows(self, idx, layers):
            assert len(layers) == depth - 1
            return torch.zeros(len(idx), TASK.num_labels), expected[idx]

    trainer = DistillationTrainer(
        model=student.train(),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        cache=OwnLayersCache(), alpha=0.5, beta=1.0, temperature=2.0,
        teacher_layers=[2, 4], normalize_patience=False,
    )
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([1, 0]), "idx": torch.tensor([0, 1])}
    with torch.no_grad():
        trainer.compute_loss(student, dict(inputs))
    assert trainer.loss_sums["pt"] == pytest.approx(0.0, abs=1e-10)
    shifted = torch.nn.functional.mse_loss(
        torch.stack([pool(hidden[j], mask, pooling) for j in range(depth - 1)], dim=1), expected
    )
    assert shifted > 1e-2  # the off-by-one selection would be caught


def test_epoch_metrics_reach_the_tracker_while_training_runs(tiny_bert, tiny_splits, tmp_path):
    """Each epoch's metrics are logged at that epoch's end, before the model is saved."""
    calls = []

    class FakeRun:
        def log_history(self, records):
            calls.append((records, (tmp_path / "model").exists(), (tmp_path / "history.json").exists()))

    history = train_model(
        build_student(str(tiny_bert), 2, TASK), load_tokenizer(str(tiny_bert)), task=TASK,
        train=tiny_splits["train"], dev=tiny_splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0,
        checkpoint_dir=tmp_path / "ckpt", model_out=tmp_path / "model", history_out=tmp_path / "history.json",
        tracker=FakeRun(),
    )
    epoch_one = [(records, saved) for records, saved, _ in calls if any(r["epoch"] == 1 for r in records)]
    assert epoch_one and not any(saved for _, saved in epoch_one)  # logged before training finished
    logged = {}
    for records, _, _ in calls:
        for record in records:
            logged.setdefault(record["epoch"], {}).update(record)
    assert logged == {h["epoch"]: h for h in history}  # every point once training ends, nothing else
    points = [(r["epoch"], k) for records, _, _ in calls for r in records for k in r if k != "epoch"]
    assert len(points) == len(set(points))  # no point logged twice
