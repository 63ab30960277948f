"""Teacher -> cache -> FT / KD / PKD-Skip / PKD-Last students on a tiny random BERT."""
import pytest
import torch
from safetensors.torch import load_file
from tiny_models import teacher_outputs, write_cache
from transformers import DataCollatorWithPadding

import pkd.method.trainer as trainer_module
import pkd.training.train as training_module
from pkd.cache.format import dataset_fingerprint, load_cache, teacher_hash
from pkd.data import get_task
from pkd.io import read_json
from pkd.method.layer_maps import layer_map
from pkd.method.losses import LossConfig
from pkd.method.trainer import DistillationTrainer
from pkd.models.loading import build_student, build_teacher, load_classifier, load_tokenizer
from pkd.pipeline.params import TrainParams
from pkd.training.train import train_model, training_arguments, training_view

TASK = get_task("builtin_sentiment")
PARAMS = TrainParams(epochs=2, batch_size=16, learning_rate=1e-3, train_eval_samples=32)
STRATEGIES = {
    "ft": dict(alpha=0.0, beta=0.0, temperature=1.0),
    "kd": dict(alpha=0.7, beta=0.0, temperature=10.0),
    "pkd_skip": dict(alpha=0.7, beta=100.0, temperature=10.0),
    "pkd_last": dict(alpha=0.7, beta=100.0, temperature=10.0),
}
PKD = LossConfig(alpha=0.7, beta=100.0, temperature=10.0, matched_layers=(2,))


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
        cache=cache, loss=LossConfig(**weights, matched_layers=tuple(layers) if layers else None),
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
            loss=LossConfig(alpha=0.5, temperature=5.0),
        )


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_patient_loss_reads_student_layers_1_to_m_minus_1(tiny_bert, tmp_path, pooling):
    """A stand-in cache hands back the student's own layers 1..M-1, computed here
    independently: the patient loss is then exactly 0, and any other choice of
    student layers (e.g. 0..M-2, off by one) makes it positive."""
    from transformers import TrainingArguments

    from pkd.method.pooling import pool
    from pkd.method.trainer import DistillationTrainer

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
        def require_pooling(self, pooling):
            pass

        def require_layers(self, layers):
            pass

        def rows(self, idx, layers):
            assert len(layers) == depth - 1
            return torch.zeros(len(idx), TASK.num_labels), expected[idx]

    trainer = DistillationTrainer(
        model=student.train(),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        cache=OwnLayersCache(),
        loss=LossConfig(alpha=0.5, beta=1.0, temperature=2.0, matched_layers=(2, 4), normalize_patience=False),
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


HOST_READS = ("item", "__float__", "__int__", "__bool__", "tolist")


def test_loss_terms_accumulate_on_device_without_a_host_read_per_step(trained_teacher, tiny_bert, tiny_splits, tmp_path):
    root, _ = trained_teacher
    cache = load_cache(root / "cache", "train", dataset=tiny_splits["train"], teacher_dir=root / "teacher")
    model = build_student(str(tiny_bert), 2, TASK)
    for module in model.modules():  # deterministic forward in train mode, for the independent check below
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    tokenizer = load_tokenizer(str(tiny_bert))
    collator = DataCollatorWithPadding(tokenizer)
    trainer = DistillationTrainer(
        model=model, args=training_arguments(PARAMS, output_dir=tmp_path, seed=0, learning_rate=1e-3),
        data_collator=collator, eval_dataset=training_view(tiny_splits["dev"]), cache=cache,
        loss=LossConfig(alpha=0.7, beta=100.0, temperature=1.0, matched_layers=(2,)),  # T = 1: a KL large enough for float32 to resolve
    )
    train = training_view(tiny_splits["train"])
    batches = [collator([train[i] for i in range(start, start + 16)]) for start in range(0, len(train), 16)]
    assert len(batches) == 6
    model.train()
    reads = []
    with pytest.MonkeyPatch.context() as mp:
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)
            mp.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name, **k: reads.append(_n) or _o(self, *a, **k))
        # The model's own forward reads a value per call (transformers checks the padding
        # mask on the host); count those, then require compute_loss to add none.
        for batch in batches:
            model(**{k: v for k, v in batch.items() if k not in ("idx", "length", "labels")}, output_hidden_states=True)
        in_forward, reads[:] = list(reads), []
        for batch in batches:
            trainer.compute_loss(model, dict(batch))
        assert reads == in_forward, f"host reads during {len(batches)} steps beyond the forward's: {reads}"
        reads.clear()
        logged = trainer.pop_epoch_losses()
    assert reads == ["tolist"]  # one read per log, for all three terms
    # Independent computation of the three terms, with the teacher rows read straight from the file.
    stored = load_file(str(root / "cache" / "train.safetensors"))
    row_of = {int(i): k for k, i in enumerate(stored["idx"])}
    expected = {"ce": [], "ds": [], "pt": []}
    with torch.no_grad():
        for batch in batches:
            rows = torch.tensor([row_of[int(i)] for i in batch["idx"]])
            out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                        attention_mask=batch["attention_mask"], output_hidden_states=True)
            t = 1.0
            p_t = torch.softmax(stored["logits"][rows].double() / t, -1)
            log_p_s = torch.log_softmax(out.logits.double() / t, -1)
            kl = (p_t * (p_t.log() - log_p_s)).sum() / out.logits.numel() * t * t
            s = torch.nn.functional.normalize(out.hidden_states[1][:, 0], dim=-1)
            te = torch.nn.functional.normalize(stored["states"][rows, 1].float(), dim=-1)  # teacher layer 2
            expected["ce"].append(torch.nn.functional.cross_entropy(out.logits, batch["labels"]).item())
            expected["ds"].append(kl.item())
            expected["pt"].append(((s - te) ** 2).mean().item())
    for term, values in expected.items():
        # float32 in the trainer vs float64 here: a KL of ~1e-6 keeps only a few float32 digits.
        assert logged[f"loss_{term}"] == pytest.approx(sum(values) / len(values), rel=1e-4, abs=1e-8), term
    assert trainer.pop_epoch_losses() == {}


def test_bf16_reaches_trainer_and_losses_stay_float32(trained_teacher, tiny_bert, tiny_splits, monkeypatch):
    """bf16 on a CPU through the library (the stages fall back to fp32 there; pkd/models/precision.py)."""
    root, _ = trained_teacher
    cache = load_cache(root / "cache", "train", dataset=tiny_splits["train"], teacher_dir=root / "teacher")
    seen = []
    real_loss = trainer_module.pkd_loss

    def recording_loss(logits_s, labels, config, **kwargs):
        loss, parts = real_loss(logits_s, labels, config, **kwargs)
        cls_s = kwargs["states_s"]
        seen.append((logits_s.dtype, None if cls_s is None else cls_s.dtype, loss.dtype, {p.dtype for p in parts.values()}))
        return loss, parts

    monkeypatch.setattr(trainer_module, "pkd_loss", recording_loss)
    args = []
    real_args = training_module.training_arguments
    monkeypatch.setattr(training_module, "training_arguments", lambda *a, **k: args.append(real_args(*a, **k)) or args[-1])
    student = build_student(str(tiny_bert), 2, TASK)
    inside = []  # dtype of a linear layer's output inside the forward: bf16 under autocast
    student.bert.encoder.layer[0].intermediate.dense.register_forward_hook(lambda m, i, out: inside.append(out.dtype))
    history = train_model(  # one short epoch: bf16 on a CPU is slow
        student, load_tokenizer(str(tiny_bert)), task=TASK, train=tiny_splits["train"].select(range(32)),
        dev=tiny_splits["dev"].select(range(16)), params=PARAMS.model_copy(update={"epochs": 1, "train_eval_samples": 16}),
        learning_rate=1e-3, seed=0,
        checkpoint_dir=root / "ckpt-bf16", model_out=root / "bf16", history_out=root / "bf16.json",
        cache=cache, loss=PKD, precision="bf16",
    )
    assert args[0].bf16 and not args[0].fp16
    assert inside and set(inside) == {torch.bfloat16}
    assert any(s[1] is not None for s in seen)  # training steps, with the patient loss
    assert all(s[2] == torch.float32 and s[3] == {torch.float32} for s in seen)  # losses in float32
    assert all(h["loss_pt"] > 0 for h in history)


@pytest.mark.slow
def test_float16_cache_trains_the_same_student_as_float32(trained_teacher, tiny_bert, tiny_splits, tmp_path):
    """The default cache dtype: a PKD-Skip student from float16 states ends where the float32 one does."""
    root, _ = trained_teacher
    model = load_classifier(root / "teacher")
    outputs = teacher_outputs(model, tiny_splits["train"], DataCollatorWithPadding(load_tokenizer(str(tiny_bert))))
    manifest = read_json(root / "cache" / "manifest.json")
    histories = {}
    for dtype in ("float32", "float16"):
        write_cache(tmp_path / dtype, {"train": outputs}, {k: manifest[k] for k in ("teacher_sha256", "data_fingerprint")}, dtype)
        cache = load_cache(tmp_path / dtype, "train", dataset=tiny_splits["train"], teacher_dir=root / "teacher")
        histories[dtype] = train_model(
            build_student(str(tiny_bert), 2, TASK, seed=0), load_tokenizer(str(tiny_bert)), task=TASK,
            train=tiny_splits["train"], dev=tiny_splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0,
            checkpoint_dir=tmp_path / f"ckpt-{dtype}", model_out=tmp_path / f"m-{dtype}",
            history_out=tmp_path / f"{dtype}.json", cache=cache, loss=PKD,
        )
    keys = ("loss_ce", "loss_ds", "loss_pt", "dev_accuracy")
    for dtype, history in histories.items():
        print(f"{dtype} cache:", [{k: h[k] for k in ("epoch", *keys)} for h in history])
    for h32, h16 in zip(histories["float32"], histories["float16"]):
        # loss_ds is ~1e-5 here (T = 10, a tiny teacher): compared to 1e-6 absolute.
        for key in ("loss_ce", "loss_ds", "loss_pt"):
            assert h16[key] == pytest.approx(h32[key], rel=1e-2, abs=1e-6), key
        assert abs(h16["dev_accuracy"] - h32["dev_accuracy"]) <= 1 / 48  # at most one of 48 dev examples


def test_length_grouped_sampler_gets_the_lengths_as_a_list(tiny_bert, tiny_splits, tmp_path):
    """Trainer hands LengthGroupedSampler `dataset["length"]`, which datasets returns as a lazy
    Column: every lengths[i] is then a table lookup, and grouping looks each one up per epoch
    (seconds per epoch at SST-2 size). A list gives the same batches."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    train = training_view(tiny_splits["train"])
    trainer = DistillationTrainer(
        model=build_student(str(tiny_bert), 2, TASK),
        args=training_arguments(PARAMS, output_dir=tmp_path, seed=0, learning_rate=1e-3),
        train_dataset=train, eval_dataset=training_view(tiny_splits["dev"]),
        data_collator=DataCollatorWithPadding(load_tokenizer(str(tiny_bert))),
    )
    sampler = trainer._get_train_sampler()
    assert type(sampler.lengths) is list
    assert sampler.lengths == list(train["length"])
    generator = torch.Generator().manual_seed(0)
    expected = get_length_grouped_indices(list(train["length"]), sampler.batch_size, generator=generator)
    sampler.generator = torch.Generator().manual_seed(0)
    assert list(iter(sampler)) == expected
