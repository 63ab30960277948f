"""Teacher outputs computed once: logits and the sentence state of the layers students read.

The fine-tuned teacher runs in eval mode, without gradients, over each split
and its outputs are stored on disk keyed by example idx (one safetensors file
per split), with a manifest naming the teacher checkpoint and data they belong
to. Students read rows by idx, so any shuffling or length grouping of the
training loader keeps each example paired with its own teacher row; a cache
made from another teacher, other data or another pooling is refused.

Paper scale (MNLI: 392,702 rows, BERT-base) shapes the format:
- only the teacher layers that the configured patient strategies pair are
  stored (the union of their layer maps over the student depths,
  `stored_layers` in the manifest), in float16 by default; a student that
  needs another layer is refused, naming it;
- the file is preallocated and filled batch by batch as the teacher runs, so
  building holds one batch in memory, not the whole split;
- a reader loads only the idx column; logits and states are read row by row
  with pread for each batch, so a distill process (or each DDP rank) holds a
  batch's rows, not the cache.
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
import torch.distributed as dist
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel

from pkd.choices import CACHE_DTYPES
from pkd.errors import StaleCacheError
from pkd.io import atomic_dir, file_sha256, read_json, write_json
from pkd.models import MODEL_INPUTS, model_pooling
from pkd.pooling import layer_states
from pkd.precision import autocast

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


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _runs(sorted_pos: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, end) slices of `sorted_pos` whose values are consecutive (one read or write each)."""
    if len(sorted_pos) == 0:
        return
    breaks = np.flatnonzero(np.diff(sorted_pos) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(sorted_pos)]])
    yield from zip(starts.tolist(), ends.tolist())


def _split_batches(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int,
    layers: list[int], precision: str,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Teacher (idx [B], logits [B, C], states [B, L, H] of `layers` or None) per batch, all ranks' batches.

    Batches are formed from length-sorted examples (less padding, same
    results: eval mode is deterministic and attention masks the padding).
    Under torch.distributed each rank takes a contiguous shard; the ranks step
    in lockstep and every batch is gathered, so each rank sees every row once,
    one batch at a time, and the cache equals the single-process one.
    """
    rank, world = _dist_info()
    shards = [dataset.shard(num_shards=world, index=r, contiguous=True) for r in range(world)] if world > 1 else [dataset]
    shard = shards[rank]
    steps = max(math.ceil(len(s) / batch_size) for s in shards)
    model.eval()
    device = next(model.parameters()).device
    pooling = model_pooling(model)
    order = np.argsort(np.asarray(shard["length"]), kind="stable")
    for step in tqdm(range(steps), total=steps, desc="teacher cache", unit="batch", disable=None):
        chosen = order[step * batch_size : (step + 1) * batch_size]
        part = None
        if len(chosen):
            rows = shard.select(chosen)
            batch = collator([{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows])
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad(), autocast(precision, device):
                out = model(**batch, output_hidden_states=bool(layers))
                # hidden_states[0] is the embedding output; layers 1..N follow.
                states = layer_states(out.hidden_states, batch.get("attention_mask"), pooling, layers) if layers else None
            part = (
                torch.as_tensor(rows["idx"], dtype=torch.long),
                out.logits.float().cpu(),
                None if states is None else states.float().cpu(),
            )
        if world == 1:
            yield part
            continue
        gathered: list = [None] * world
        dist.all_gather_object(gathered, part)
        yield from (p for p in gathered if p is not None)


def _all_layers(model: PreTrainedModel, layers: list[int] | None) -> list[int]:
    return list(range(1, model.config.num_hidden_layers + 1)) if layers is None else sorted(set(layers))


def teacher_outputs(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64,
    layers: list[int] | None = None, precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """In memory, for small data: idx [n], logits [n, C], states [n, L, H] of `layers` (default 1..N), sorted by idx.

    `states` holds the sentence state of each layer: the [CLS] state, or the
    masked mean of the token states for a model trained with `pooling: mean`.
    The pipeline streams to disk instead (`build_cache`).
    """
    layers = _all_layers(model, layers)
    parts = list(_split_batches(model, dataset, collator, batch_size, layers, precision))
    result = {"idx": torch.cat([p[0] for p in parts]), "logits": torch.cat([p[1] for p in parts]),
              "states": torch.cat([p[2] for p in parts])}
    order_by_idx = torch.argsort(result["idx"])
    return {k: v[order_by_idx].contiguous() for k, v in result.items()}


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


def _cache_manifest(manifest: dict, *, teacher_layers: int, stored_layers: list[int], dtype: str, shapes: dict) -> dict:
    return {**manifest, "layers": teacher_layers, "stored_layers": stored_layers, "dtype": dtype, "shapes": shapes}


def build_cache(
    model: PreTrainedModel,
    splits: dict[str, Dataset],
    collator: DataCollatorWithPadding,
    out_dir: str | Path,
    manifest: dict,
    *,
    layers: list[int],
    dtype: str = "float16",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, int]:
    """Run the teacher over each split and stream its outputs to `out_dir`; return rows per split.

    Stores the logits and the states of `layers` (teacher layers, 1-based).
    Memory: one batch of every rank, plus the split's idx column. Under
    torch.distributed every rank runs its shard and rank 0 writes. The
    directory appears atomically, with a manifest that records the teacher's
    depth, hidden size, labels, pooling, the stored layers, dtype and shapes.
    """
    rank, _ = _dist_info()
    config = model.config
    layers = sorted(set(layers))
    for layer in layers:
        if not 1 <= layer <= config.num_hidden_layers:
            raise ValueError(f"teacher layer {layer} is outside 1..{config.num_hidden_layers}")
    target = atomic_dir(out_dir) if rank == 0 else contextlib.nullcontext()
    rows, shapes = {}, {}
    with target as tmp:
        for name, dataset in splits.items():
            writer = None
            if rank == 0:
                writer = CacheFileWriter(tmp / f"{name}.safetensors", dataset["idx"], config.num_labels,
                                         config.hidden_size, len(layers), TORCH_DTYPES[dtype])
            for part in _split_batches(model, dataset, collator, batch_size, layers, precision):
                if writer is not None:
                    writer.write(*part)
            if writer is not None:
                shapes[name] = writer.close()
            rows[name] = len(dataset)
        if rank == 0:
            info = {"hidden_size": config.hidden_size, "num_labels": config.num_labels,
                    "pooling": model_pooling(model), "precision": precision}
            write_json(tmp / MANIFEST, _cache_manifest({**manifest, **info}, teacher_layers=config.num_hidden_layers,
                                                       stored_layers=layers, dtype=dtype, shapes=shapes))
    return rows


def build_teacher_cache(
    model: PreTrainedModel,
    task,
    splits,
    collator: DataCollatorWithPadding,
    out_dir: str | Path,
    *,
    teacher_dir: str | Path,
    layers: list[int],
    dtype: str = "float16",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, int]:
    """The teacher_cache stage's work: cache the train and dev splits of `task` (a TaskInfo),
    with a manifest naming the teacher (by content hash) and the data (by fingerprint),
    so that a student never reads a cache made from another teacher or other data.
    Returns the rows written per split."""
    names = ["train", *task.dev_splits]
    manifest = {
        "task": task.name,
        "teacher_dir": str(teacher_dir),
        "teacher_sha256": teacher_hash(teacher_dir),
        "data_fingerprint": {name: dataset_fingerprint(splits[name]) for name in names},
    }
    return build_cache(model, {name: splits[name] for name in names}, collator, out_dir, manifest,
                       layers=layers, dtype=dtype, batch_size=batch_size, precision=precision)


def write_cache(
    out_dir: str | Path, splits: dict[str, dict[str, torch.Tensor]], manifest: dict, dtype: str,
    layers: list[int] | None = None,
) -> None:
    """Write in-memory outputs (`teacher_outputs`) in the cache format, atomically.

    `layers`: the teacher layers that `states` holds (default 1..L, all of a
    teacher's layers); the manifest's `layers` (teacher depth) defaults to L.
    """
    with atomic_dir(out_dir) as tmp:
        shapes, stored = {}, layers
        for split, tensors in splits.items():
            _, num_states, hidden = tensors["states"].shape
            stored = list(range(1, num_states + 1)) if layers is None else list(layers)
            writer = CacheFileWriter(tmp / f"{split}.safetensors", tensors["idx"], tensors["logits"].shape[1],
                                     hidden, num_states, TORCH_DTYPES[dtype])
            writer.write(tensors["idx"], tensors["logits"], tensors["states"])
            shapes[split] = writer.close()
        teacher_layers = manifest.get("layers", max(stored or [0]))
        write_json(tmp / MANIFEST, _cache_manifest(manifest, teacher_layers=teacher_layers, stored_layers=stored,
                                                   dtype=dtype, shapes=shapes))


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
