"""The key of a resumable training run: a leftover checkpoint is resumed only by the same run.

A run is defined by the settings it reads and by its input files (prepared
data, teacher, cache manifest), hashed by content.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pkd.io import feed_file


def config_hash(*parts) -> str:
    """Short hash of what defines a training run, so a resume never mixes runs.

    The parts are settings (params sections, dicts, values) and input files or
    directories (`Path`, hashed by content): a checkpoint left by a killed run
    is resumed only when the params it read, its data and its teacher are the same.
    """
    def encode(part):
        if isinstance(part, Path):
            return tree_sha256(part)
        return part.model_dump() if hasattr(part, "model_dump") else part

    blob = json.dumps([encode(p) for p in parts], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def tree_sha256(path: Path) -> str:
    """Content hash of a file, or of the names and bytes of every file below a directory."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: not found or empty")
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" if file != path else b"")
        feed_file(digest, file)
    return digest.hexdigest()
