import numpy as np
import pytest
import torch
from transformers import DataCollatorWithPadding

from pkd.data import get_task
from pkd.models import load_classifier, build_teacher, load_tokenizer
from pkd.teacher_cache import (
    StaleCacheError, TeacherCache, dataset_fingerprint, load_cache, teacher_hash, teacher_outputs, write_cache,
)

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
    assert out["cls"].shape == (len(train), 4, 32)  # every layer 1..N
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
        torch.testing.assert_close(out["cls"][pos, 2], single.hidden_states[3][0, 0], atol=1e-5, rtol=1e-4)


def test_rows_follow_idx_under_any_order():
    n = 50
    cache = TeacherCache(
        idx=torch.arange(n) * 3,  # sparse, sorted ids
        logits=torch.arange(n, dtype=torch.float).unsqueeze(1).repeat(1, 2),
        cls=torch.arange(n, dtype=torch.float).view(n, 1, 1).repeat(1, 4, 8) + torch.arange(1, 5).view(1, 4, 1),
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
    assert cache.manifest["shapes"]["train"]["cls"] == [len(train), 4, 32]
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
    assert np.isfinite(out["cls"].numpy()).all()
