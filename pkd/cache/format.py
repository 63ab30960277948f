"""The teacher cache on disk: its file format, its manifest and its reader.

One safetensors file per split holds the teacher's outputs keyed by example
idx: `idx` [n] (sorted), `logits` [n, C] in float32 and `states` [n, L, H],
the sentence state of each stored teacher layer, in the manifest's dtype
(float16 by default). The manifest (`manifest.json`) names what the rows were
made from: the teacher (hash of its weights), the data (fingerprint per
split), the pooling and precision, the teacher depth and the stored layers.
A student reads rows by idx, so any shuffling or length grouping of its
loader keeps each example paired with its own teacher row, and a cache made
from another teacher, other data or another pooling is refused.

Paper scale (MNLI: 392,702 rows, BERT-base) shapes the format: the writer
preallocates the file and fills it batch by batch, in any row order; a
reader loads only the idx column and reads the rows of each batch with
pread, so a distill process (or each DDP rank) holds a batch's rows, not the
cache. pkd.cache.build builds a cache with this writer.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from pkd.allowed_values import CACHE_DTYPES
from pkd.errors import StaleCacheError
from pkd.io import file_sha256, read_json

MANIFEST = "manifest.json"
# params.yaml's names of the cache dtypes -> torch dtypes.
TORCH_DTYPES = {name: getattr(torch, name) for name in CACHE_DTYPES}
# safetensors' names for the dtypes a cache file holds.
_ST_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_ST_DTYPES = {v: k for k, v in _ST_NAMES.items()}


def teacher_hash(teacher_dir: str | Path) -> str:
    """Hash of the teacher's weights file(s)."""
    files = sorted(Path(teacher_dir).glob("*.safetensors")) or sorted(Path(teacher_dir).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{teacher_dir}: no model weights found")
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """Content hash of what the teacher saw: example ids and token ids, in idx order."""
    digest = hashlib.sha256()
    rows = dataset.select_columns(["idx", "input_ids"]).sort("idx")
    # disable=None: a bar on a terminal, none in logs.
    for row in tqdm(rows, total=len(rows), desc="fingerprint", unit="ex", disable=None):
        digest.update(np.asarray([row["idx"], *row["input_ids"]], dtype=np.int64).tobytes())
    return digest.hexdigest()


def _runs(sorted_pos: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, end) slices of `sorted_pos` whose values are consecutive (one read or write each)."""
    if len(sorted_pos) == 0:
        return
    breaks = np.flatnonzero(np.diff(sorted_pos) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(sorted_pos)]])
    yield from zip(starts.tolist(), ends.tolist())


class CacheFileWriter:
    """One split's cache file: a valid safetensors file, preallocated and filled as batches arrive.

    Rows are stored in idx order (row i holds the i-th smallest idx) whatever
    order they arrive in; `close` refuses a file with a row never written.
    """

    def __init__(self, path: str | Path, idx, num_labels: int, hidden_size: int, num_states: int, dtype: torch.dtype):
        self.path = Path(path)
        self.idx = np.sort(np.asarray(idx, dtype=np.int64))
        if len(self.idx) > 1 and (np.diff(self.idx) == 0).any():
            raise ValueError(f"{self.path.name}: example idx {int(self.idx[np.flatnonzero(np.diff(self.idx) == 0)[0]])} repeats")
        n = len(self.idx)
        specs = {"idx": (torch.int64, [n]), "logits": (torch.float32, [n, num_labels])}
        if num_states:
            specs["states"] = (dtype, [n, num_states, hidden_size])
        header, offset, self.layout = {}, 0, {}
        for name, (dt, shape) in specs.items():
            row_bytes = math.prod(shape[1:]) * dt.itemsize
            header[name] = {"dtype": _ST_NAMES[dt], "shape": shape, "data_offsets": [offset, offset + n * row_bytes]}
            self.layout[name] = (offset, row_bytes, dt)
            offset += n * row_bytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8 bytes
        self.data_start = 8 + len(blob)
        self.fh = self.path.open("wb+")
        self.fh.write(len(blob).to_bytes(8, "little") + blob)
        self.fh.truncate(self.data_start + offset)  # sparse until written
        self.written = np.zeros(n, dtype=bool)
        self.shapes = {name: shape for name, (_, shape) in specs.items()}
        self._write_rows("idx", np.arange(n), torch.from_numpy(self.idx))

    def _write_rows(self, name: str, pos: np.ndarray, values: torch.Tensor) -> None:
        offset, row_bytes, dt = self.layout[name]
        order = np.argsort(pos, kind="stable")
        raw = values.to(dt)[torch.from_numpy(order)].contiguous().view(torch.uint8).numpy().reshape(len(pos), row_bytes)
        sorted_pos = pos[order]
        for a, b in _runs(sorted_pos):
            os.pwrite(self.fh.fileno(), raw[a:b].tobytes(), self.data_start + offset + int(sorted_pos[a]) * row_bytes)

    def write(self, idx: torch.Tensor, logits: torch.Tensor, states: torch.Tensor | None) -> None:
        idx_np = idx.numpy().astype(np.int64)
        pos = np.searchsorted(self.idx, idx_np).clip(max=max(len(self.idx) - 1, 0))
        if len(self.idx) == 0 or (self.idx[pos] != idx_np).any():
            raise ValueError(f"{self.path.name}: a teacher row has an idx that the split does not have")
        self._write_rows("logits", pos, logits)
        if "states" in self.layout:
            self._write_rows("states", pos, states)
        self.written[pos] = True

    def close(self) -> dict[str, list[int]]:
        """Flush and close; return the tensor shapes. Refuses a file with missing rows."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        if not self.written.all():
            raise RuntimeError(f"{self.path.name}: {int((~self.written).sum())} rows were never written")
        return self.shapes


def cache_manifest(manifest: dict, *, teacher_depth: int, stored_layers: list[int], dtype: str, shapes: dict) -> dict:
    """`manifest` (what the rows were made from) with what the files hold."""
    return {**manifest, "layers": teacher_depth, "stored_layers": stored_layers, "dtype": dtype, "shapes": shapes}


class RowFile:
    """The rows of one tensor in a safetensors file, read on demand with pread.

    Indexing (an int, a slice, an index array or tensor) reads just those rows;
    nothing is memory-mapped, so a reader's memory is the rows it asked for,
    however many batches it has read (the kernel's page cache is shared).
    """

    def __init__(self, path: str | Path, start: int, shape: list[int], dtype: torch.dtype):
        self.path, self.start, self.shape, self.dtype = str(path), start, tuple(shape), dtype
        self.row_shape = self.shape[1:]
        self.row_bytes = math.prod(self.row_shape) * dtype.itemsize
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):
        return {**self.__dict__, "_fd": None, "_pid": None}

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            pos = np.arange(len(self))[key]
        else:
            pos = np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key, dtype=np.int64)
        scalar = pos.ndim == 0
        pos = np.atleast_1d(pos)
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"{self.path}: row {int(pos.max())} outside 0..{len(self) - 1}")
        order = np.argsort(pos, kind="stable")
        sorted_pos = pos[order]
        buf = bytearray(len(pos) * self.row_bytes)
        fd = self._file()
        for a, b in _runs(sorted_pos):
            want = (b - a) * self.row_bytes
            data = os.pread(fd, want, self.start + int(sorted_pos[a]) * self.row_bytes)
            if len(data) != want:
                raise StaleCacheError(f"{self.path}: file is truncated")
            buf[a * self.row_bytes : b * self.row_bytes] = data
        rows = torch.frombuffer(buf, dtype=self.dtype) if buf else torch.empty(0, dtype=self.dtype)
        rows = rows.view(len(pos), *self.row_shape)
        out = torch.empty_like(rows)
        out[torch.from_numpy(order)] = rows
        return out[0] if scalar else out


def open_cache_file(path: str | Path) -> dict[str, RowFile]:
    """The tensors of a safetensors file as lazily read RowFiles."""
    with Path(path).open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return {
        name: RowFile(path, 8 + size + spec["data_offsets"][0], spec["shape"], _ST_DTYPES[spec["dtype"]])
        for name, spec in header.items()
    }


@dataclass
class TeacherCache:
    """One split of cached teacher outputs, looked up by example idx.

    `logits` and `states` are tensors, or RowFiles read on demand (`load_cache`).
    `stored_layers` names the teacher layers (1-based) that `states` holds, in
    order; None means all of them, 1..L.
    """

    idx: torch.Tensor  # [n], sorted
    logits: torch.Tensor | RowFile  # [n, C]
    states: torch.Tensor | RowFile | None  # [n, L, H]
    manifest: dict
    stored_layers: list[int] | None = None
    source: str = field(default="teacher cache")

    def __post_init__(self):
        if self.stored_layers is None:
            self.stored_layers = list(range(1, self.states.shape[1] + 1)) if self.states is not None else []
        self._idx = self.idx.numpy().astype(np.int64)

    @property
    def hidden_size(self) -> int | None:
        """Width of the stored teacher states (None when the cache holds logits only)."""
        return int(self.states.shape[-1]) if self.states is not None else None

    @property
    def num_layers(self) -> int:
        """Depth N of the teacher the cache was made from."""
        return int(self.manifest.get("layers", len(self.stored_layers)))

    def require_layers(self, layers: list[int] | None) -> list[int]:
        """Positions of `layers` in `states`; refuses a layer that the cache does not hold, naming it."""
        if not layers:
            return []
        missing = [layer for layer in layers if layer not in self.stored_layers]
        if missing:
            raise StaleCacheError(
                f"{self.source}: teacher layer(s) {', '.join(map(str, missing))} needed by this student are not in "
                f"the cache (it holds {self.stored_layers or 'logits only'}); re-run the teacher_cache stage "
                "with the current student.depths and student.strategies"
            )
        return [self.stored_layers.index(layer) for layer in layers]

    def require_pooling(self, pooling: str | None) -> None:
        """Refuses a cache made with another pooling than the student's."""
        cached = self.manifest.get("pooling")
        if pooling is not None and cached is not None and cached != pooling:
            raise StaleCacheError(
                f"{self.source}: teacher cache was made with pooling '{cached}' but the student uses '{pooling}'; "
                "re-run the teacher and teacher_cache stages with the same pooling"
            )

    def rows(self, idx: torch.Tensor, layers: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher logits [B, C] and states [B, L, H] of `layers` (1-based), float32, for examples `idx`."""
        wanted = idx.detach().cpu().numpy().astype(np.int64)
        pos = np.searchsorted(self._idx, wanted).clip(max=max(len(self._idx) - 1, 0))
        missing = (self._idx[pos] != wanted) if len(self._idx) else np.ones(len(wanted), dtype=bool)
        if missing.any():
            raise StaleCacheError(f"example idx {int(wanted[missing][0])} is not in the teacher cache")
        pos_t = torch.from_numpy(pos)
        logits = self.logits[pos_t].float()
        if layers is None:
            return logits, None
        columns = self.require_layers(layers)
        return logits, self.states[pos_t][:, columns].float()


def load_cache(
    cache_dir: str | Path, split: str, *, dataset: Dataset, teacher_dir: str | Path, pooling: str | None = None
) -> TeacherCache:
    """Open a split lazily and refuse it unless it was made from this teacher, this data and `pooling`."""
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: teacher cache manifest not found (run the teacher_cache stage)")
    manifest = read_json(manifest_path)
    expected_teacher = teacher_hash(teacher_dir)
    if manifest.get("teacher_sha256") != expected_teacher:
        raise StaleCacheError(
            f"{cache_dir}: teacher cache was made from another teacher checkpoint "
            f"({str(manifest.get('teacher_sha256'))[:12]} != {expected_teacher[:12]} of {teacher_dir}); "
            "re-run the teacher_cache stage"
        )
    expected_data = dataset_fingerprint(dataset)
    if manifest.get("data_fingerprint", {}).get(split) != expected_data:
        raise StaleCacheError(
            f"{cache_dir}: teacher cache for split '{split}' was made from other data "
            "(dataset fingerprint differs); re-run the teacher_cache stage"
        )
    tensors = open_cache_file(cache_dir / f"{split}.safetensors")
    cache = TeacherCache(
        idx=tensors["idx"][:], logits=tensors["logits"], states=tensors.get("states"), manifest=manifest,
        stored_layers=manifest.get("stored_layers"), source=str(cache_dir),
    )
    cache.require_pooling(pooling)
    return cache
