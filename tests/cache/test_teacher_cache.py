import os

import numpy as np
import pytest
import torch
from conftest import RecordingBar
from safetensors.torch import load_file
from tiny_models import teacher_outputs, write_cache
from transformers import DataCollatorWithPadding

from pkd.cache.build import build_cache
from pkd.cache.format import (
    CacheFileWriter,
    TeacherCache,
    dataset_fingerprint,
    load_cache,
    teacher_hash,
)
from pkd.data import get_task
from pkd.errors import StaleCacheError
from pkd.io import read_json
from pkd.method.losses import patient_loss
from pkd.models.loading import build_teacher, load_classifier, load_tokenizer

TASK = get_task("builtin_sentiment")


@pytest.fixture(scope="module")
def saved_teacher(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    build_teacher(str(tiny_bert), TASK).save_pretrained(path)
    load_tokenizer(str(tiny_bert)).save_pretrained(path)
    return path


def run_teacher(path, split):
    model = load_classifier(path)
    return model, teacher_outputs(model, split, DataCollatorWithPadding(load_tokenizer(str(path))), batch_size=16)


def test_outputs_sorted_by_idx_and_equal_to_one_example_at_a_time(saved_teacher, tiny_splits):
    train = tiny_splits["train"]
    model, out = run_teacher(saved_teacher, train)
    assert out["idx"].tolist() == sorted(train["idx"])
    assert out["logits"].shape == (len(train), 2)
    assert out["states"].shape == (len(train), 4, 32)  # every layer 1..N
    # Length-sorted padded batches give the same rows as unpadded single examples.
    for i in (0, 17, len(train) - 1):
        row = train[i]
        with torch.no_grad():
            single = model(
                input_ids=torch.tensor([row["input_ids"]]), attention_mask=torch.tensor([row["attention_mask"]]),
                token_type_ids=torch.tensor([row["token_type_ids"]]), output_hidden_states=True,
            )
        pos = out["idx"].tolist().index(row["idx"])
        torch.testing.assert_close(out["logits"][pos], single.logits[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out["states"][pos, 2], single.hidden_states[3][0, 0], atol=1e-5, rtol=1e-4)


def test_rows_follow_idx_under_any_order():
    n = 50
    cache = TeacherCache(
        idx=torch.arange(n) * 3,  # sparse, sorted ids
        logits=torch.arange(n, dtype=torch.float).unsqueeze(1).repeat(1, 2),
        states=torch.arange(n, dtype=torch.float).view(n, 1, 1).repeat(1, 4, 8) + torch.arange(1, 5).view(1, 4, 1),
        manifest={},
    )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:16]
    logits, cls = cache.rows(perm * 3, layers=[2, 4])
    assert logits[:, 0].tolist() == perm.float().tolist()
    assert cls.shape == (16, 2, 8)
    assert torch.equal(cls[:, 0, 0], perm.float() + 2) and torch.equal(cls[:, 1, 0], perm.float() + 4)
    with pytest.raises(StaleCacheError, match="idx 1 is not in the teacher cache"):
        cache.rows(torch.tensor([0, 1]))


def test_write_load_roundtrip_and_stale_cache_refused(saved_teacher, tiny_splits, tmp_path):
    train = tiny_splits["train"]
    _, out = run_teacher(saved_teacher, train)
    manifest = {"teacher_sha256": teacher_hash(saved_teacher), "data_fingerprint": {"train": dataset_fingerprint(train)}}
    write_cache(tmp_path / "cache", {"train": out}, manifest, "float32")
    cache = load_cache(tmp_path / "cache", "train", dataset=train, teacher_dir=saved_teacher)
    assert torch.equal(cache.logits[:], out["logits"]) and cache.num_layers == 4
    assert cache.manifest["shapes"]["train"]["states"] == [len(train), 4, 32]
    # Other data: one token changed.
    changed = train.map(lambda r, i: {"input_ids": [r["input_ids"][0] + (i == 5)] + r["input_ids"][1:]}, with_indices=True)
    with pytest.raises(StaleCacheError, match="other data"):
        load_cache(tmp_path / "cache", "train", dataset=changed, teacher_dir=saved_teacher)
    # Another teacher: weights differ.
    other = tmp_path / "other-teacher"
    retrained = build_teacher(str(saved_teacher), TASK)
    with torch.no_grad():
        retrained.classifier.bias.add_(0.01)
    retrained.save_pretrained(other)
    with pytest.raises(StaleCacheError, match="another teacher"):
        load_cache(tmp_path / "cache", "train", dataset=train, teacher_dir=other)
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_cache(tmp_path / "nowhere", "train", dataset=train, teacher_dir=saved_teacher)


def test_float16_cache_halves_cls_storage(saved_teacher, tiny_splits, tmp_path):
    _, out = run_teacher(saved_teacher, tiny_splits["dev"])
    write_cache(tmp_path / "c16", {"dev": out}, {}, "float16")
    write_cache(tmp_path / "c32", {"dev": out}, {}, "float32")
    size = lambda p: (p / "dev.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "c16") < 0.6 * size(tmp_path / "c32")
    assert np.isfinite(out["states"].numpy()).all()


def test_cache_pass_and_fingerprint_show_progress(saved_teacher, tiny_splits, monkeypatch):
    from pkd.cache import build as teacher_cache
    from pkd.cache import format as cache_format

    RecordingBar.bars = []
    monkeypatch.setattr(teacher_cache, "tqdm", RecordingBar)
    monkeypatch.setattr(cache_format, "tqdm", RecordingBar)
    train = tiny_splits["train"]
    run_teacher(saved_teacher, train)
    before = dataset_fingerprint(train)
    bars = {bar.desc: bar for bar in RecordingBar.bars}
    assert bars["teacher cache"].total == bars["teacher cache"].steps == -(-len(train) // 16)  # one step per batch
    assert bars["fingerprint"].total == bars["fingerprint"].steps == len(train)
    monkeypatch.undo()
    assert dataset_fingerprint(train) == before  # the progress bar does not change the hash


def build(saved_teacher, splits, out, layers, dtype="float32", batch_size=16, manifest=None):
    model = load_classifier(saved_teacher)
    collator = DataCollatorWithPadding(load_tokenizer(str(saved_teacher)))
    manifest = manifest or {
        "teacher_sha256": teacher_hash(saved_teacher),
        "data_fingerprint": {name: dataset_fingerprint(ds) for name, ds in splits.items()},
    }
    return build_cache(model, splits, collator, out, manifest, layers=layers, dtype=dtype, batch_size=batch_size)


def test_build_cache_stores_only_the_union_layers_streamed_batch_by_batch(saved_teacher, tiny_splits, tmp_path, monkeypatch):
    train = tiny_splits["train"]
    writes = []
    original = CacheFileWriter.write

    def recording_write(self, idx, logits, states):
        writes.append((int(self.written.sum()), len(idx)))
        return original(self, idx, logits, states)

    monkeypatch.setattr(CacheFileWriter, "write", recording_write)
    rows = build(saved_teacher, {"train": train}, tmp_path / "cache", layers=[3, 2])
    assert rows == {"train": len(train)}
    # Streamed: one write per batch of 16, each adding its rows to a file already partly written.
    assert [w[0] for w in writes] == list(range(0, len(train), 16)) and {w[1] for w in writes} == {16}
    manifest = read_json(tmp_path / "cache" / "manifest.json")
    assert manifest["stored_layers"] == [2, 3] and manifest["layers"] == 4 and manifest["pooling"] == "cls"
    # A valid safetensors file, rows in idx order, equal to the in-memory teacher pass.
    stored = load_file(str(tmp_path / "cache" / "train.safetensors"))
    _, full = run_teacher(saved_teacher, train)
    assert stored["idx"].tolist() == full["idx"].tolist()
    torch.testing.assert_close(stored["logits"], full["logits"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(stored["states"], full["states"][:, [1, 2]], atol=1e-5, rtol=1e-4)
    cache = load_cache(tmp_path / "cache", "train", dataset=train, teacher_dir=saved_teacher, pooling="cls")
    pick = full["idx"][[40, 3, 77]]
    logits, cls = cache.rows(pick, layers=[3])
    torch.testing.assert_close(cls[:, 0], full["states"][[40, 3, 77], 2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, full["logits"][[40, 3, 77]], atol=1e-5, rtol=1e-4)
    with pytest.raises(StaleCacheError, match=r"teacher layer\(s\) 1, 4 .* re-run the teacher_cache stage"):
        cache.rows(pick, layers=[1, 2, 4])
    with pytest.raises(StaleCacheError, match="pooling 'cls' but the student uses 'mean'"):
        load_cache(tmp_path / "cache", "train", dataset=train, teacher_dir=saved_teacher, pooling="mean")


def test_reader_touches_only_the_rows_of_its_batch(saved_teacher, tiny_splits, tmp_path, monkeypatch):
    train = tiny_splits["train"]
    build(saved_teacher, {"train": train}, tmp_path / "cache", layers=[1, 2, 3], dtype="float16")
    cache = load_cache(tmp_path / "cache", "train", dataset=train, teacher_dir=saved_teacher)
    read = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: read.append(n) or real_pread(fd, n, off))
    cache.rows(torch.tensor(train["idx"][:4]), layers=[2])
    row_bytes = 3 * 32 * 2 + 2 * 4  # three float16 states of width 32 + two float32 logits
    assert 0 < sum(read) <= 4 * row_bytes


def test_float16_states_give_the_float32_losses(saved_teacher, tiny_splits, tmp_path):
    """What storing the teacher's states in float16 changes: the patient loss, by < 0.1%."""
    train = tiny_splits["train"]
    for dtype in ("float32", "float16"):
        build(saved_teacher, {"train": train}, tmp_path / dtype, layers=[2], dtype=dtype)
    caches = {d: load_cache(tmp_path / d, "train", dataset=train, teacher_dir=saved_teacher) for d in ("float32", "float16")}
    idx = torch.tensor(train["idx"])
    cls_s = torch.randn(len(idx), 1, 32, generator=torch.Generator().manual_seed(0))
    losses = {}
    for dtype, cache in caches.items():
        _, cls_t = cache.rows(idx, layers=[2])
        for normalize in (True, False):
            losses[dtype, normalize] = float(patient_loss(cls_s, cls_t, normalize))
        assert cache.rows(idx)[0].dtype == torch.float32  # logits are stored in float32 either way
    for normalize in (True, False):
        assert abs(losses["float16", normalize] / losses["float32", normalize] - 1) < 1e-3


def test_cache_stage_depends_on_the_params_that_choose_its_layers_and_names_no_strategy():
    """A beta sweep (`-S strategies.pkd_skip.beta=500`) must not rebuild the cache, and a strategy
    added to the registry must not need dvc.yaml edited: no strategy's params are cache inputs."""
    import yaml
    from conftest import ROOT

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["teacher_cache"]["do"]
    for key in ("student.depths", "student.strategies", "teacher.cache_dtype", "precision"):
        assert key in stage["params"], key
    assert [key for key in stage["params"] if str(key).startswith("strategies")] == []
    assert "pkd/method/layer_maps.py" in stage["deps"] and "pkd/method/strategies.py" in stage["deps"]
