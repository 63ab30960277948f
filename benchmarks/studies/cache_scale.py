"""Teacher cache at MNLI scale: a previous whole-file format vs the library's streamed, union-layer one.

Study, 2026-11-30, at 6cecda7 (the streamed format) against the previous whole-file
format, emulated below; shared 2-core box under load 11-13 (times inflated; sizes and
memory are not). OLD measured at 1/8 of the rows and scaled.
Result: disk 14.48 -> 4.83 GB (3.0x); build peak RSS 40.7 -> 0.53 GiB (0.12x the file);
reader peak RSS 14.0 -> 0.52 GiB; lookup of 32 random idx 0.49 -> 1.26 ms median (pread
from the page cache, far below a training step).
Decision: the cache stores only the layers the students read, in float16, streamed batch
by batch into a preallocated file and read row by row (pkd/cache/format.py).

Builds and reads a cache of MNLI's shape (392,702 training rows, a 12-layer,
768-wide teacher, 3 labels) with synthetic teacher outputs in place of a
teacher forward, in both formats, each step in its own process so that its
peak resident memory (ru_maxrss) is its own:

- OLD (a previous on-disk format, emulated here): every layer 1..12 in float32, the
  teacher pass collected in lists, concatenated, sorted by idx and written
  with safetensors' save_file; a distill process loads the whole file
  (load_file) and indexes it in memory.
- NEW (pkd.cache.build, as the pipeline runs it): build_teacher_cache
  with the layers Params.patient_layers gives for the configured students
  (default: every strategy with a patient loss, depths 6 and 3: with the paper's
  four, layers 2, 4, 6, 7, 8, 9, 10, 11) in params.yaml's cache dtype (float16), streamed batch by batch into
  a preallocated file; the reader is load_cache (it checks the teacher's hash
  and the data fingerprint, loads the idx column) and TeacherCache.rows, which
  preads each batch's rows.

The teacher is synthetic in both: row idx's logits and layer states are row
(idx mod 1024) of a fixed random block, so that every lookup can be checked.
OLD's pass yields batches of 64 rows in a random order (the cache pass visits
examples length-sorted, not by idx). NEW's build_teacher_cache runs a stand-in
module with the teacher's interface over a dataset of one-token rows in the
same random order, so its time is the library's own work (batching, pooling,
writing, fingerprinting) without a teacher forward. The reader looks up
`--lookups` random batches of 32 idx (0: one full shuffled epoch) with the
layers of a 6-layer student of the paper's PKD (pkd.training.distill.loss_config).

The old format does not fit this machine at full size (its build holds
about three copies of a 14.5 GB array), so it runs at `--old-fraction` of the
rows and its sizes are extrapolated linearly (file size, build and reader
memory above the process baseline scale with rows; per-batch lookup time does
not). The table says which figures are extrapolated. Files are written under
`--dir` (default: a temporary directory) and deleted at the end.

    python benchmarks/studies/cache_scale.py                       # full MNLI shape (~5 GB written)
    python benchmarks/studies/cache_scale.py --quick               # 20,000 rows: a code-path check
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pkd.method import strategies  # the registry only: torch is imported where it is used

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 1024  # distinct synthetic state rows
TASK = "mnli"


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=392_702, help="training rows (MNLI: 392,702)")
    p.add_argument("--layers", type=int, default=12, help="teacher depth N")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--depths", default="6,3", help="student.depths whose layers the new cache stores [6,3]")
    patient = ",".join(s for s in strategies.names() if strategies.get_strategy(s).patient)
    p.add_argument("--strategies", default=patient,
                   help=f"student.strategies whose layers the new cache stores [{patient}]")
    p.add_argument("--params", default=str(ROOT / "params.yaml"),
                   help="the other settings: alpha/beta of each strategy, cache_dtype [params.yaml]")
    p.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"],
                   help="new format's states [--params' teacher.cache_dtype]")
    p.add_argument("--build-batch", type=int, default=64, help="rows per teacher-pass batch")
    p.add_argument("--lookup-batch", type=int, default=32)
    p.add_argument("--lookups", type=int, default=0, help="reader batches (0: one full shuffled epoch)")
    p.add_argument("--old-fraction", type=float, default=0.125, help="fraction of rows for the old format")
    p.add_argument("--dir", default=None, help="where to write the caches (deleted afterwards)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="20,000 rows, 200 lookups (code-path check)")
    p.add_argument("--role", default=None, help=argparse.SUPPRESS)
    p.add_argument("--path", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.lookups = 20_000, 200
    return args


# ---- the roles, each run in its own process -------------------------------------------------

def _synthetic(n: int, args):
    """The synthetic teacher's state and logit blocks, and the order its pass visits the n rows."""
    import torch

    g = torch.Generator().manual_seed(args.seed)
    block = torch.randn(BLOCK, args.layers, args.hidden, generator=g)
    logits_block = torch.randn(BLOCK, args.labels, generator=g)
    return block, logits_block, torch.randperm(n, generator=g)


def _synthetic_pass(n: int, layers: list[int], args):
    """(idx, logits, states of `layers`) batches in a random order, like the cache pass."""
    import torch

    block, logits_block, order = _synthetic(n, args)
    columns = torch.tensor([layer - 1 for layer in layers])
    for start in range(0, n, args.build_batch):
        idx = order[start : start + args.build_batch]
        yield idx, logits_block[idx % BLOCK], block[idx % BLOCK][:, columns]


def _params(args):
    """--params with student.depths and student.strategies (and --dtype) from the flags."""
    from pkd.pipeline.params import load_params

    params = load_params(args.params)
    student = params.student.model_copy(update={"depths": [int(d) for d in args.depths.split(",")],
                                                "strategies": args.strategies.split(",")})
    teacher = params.teacher.model_copy(update={"cache_dtype": args.dtype or params.teacher.cache_dtype})
    return params.model_copy(update={"student": student, "teacher": teacher})


def _student_layers(args) -> list[int]:
    """The teacher layers a student of the paper's PKD of the first of --depths reads, as the distill stage plans it."""
    from pkd.training.distill import loss_config

    return loss_config(_params(args), strategies.PKD, TASK, int(args.depths.split(",")[0]), args.layers).patient_layers


def _synthetic_teacher(args):
    """A module with the teacher's interface whose outputs for a row are its rows of the blocks.

    Its input_ids are one token, the example's idx; its hidden states are one
    token long, so that either pooling gives back the block row.
    """
    from types import SimpleNamespace

    import torch
    from transformers import BertConfig

    class SyntheticTeacher(torch.nn.Module):
        def __init__(self, block, logits_block):
            super().__init__()
            self.config = BertConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, num_labels=args.labels,
                                     num_attention_heads=1)
            self.block = torch.nn.Parameter(block, requires_grad=False)
            self.logits_block = torch.nn.Parameter(logits_block, requires_grad=False)

        def forward(self, input_ids, attention_mask=None, output_hidden_states=False, **kwargs):
            rows = input_ids[:, 0] % BLOCK
            states = self.block[rows].unsqueeze(2)  # [B, N, 1 token, H]
            hidden = (torch.zeros_like(states[:, 0]), *states.unbind(1)) if output_hidden_states else None
            return SimpleNamespace(logits=self.logits_block[rows], hidden_states=hidden)

        def save_pretrained(self, path: Path) -> None:
            from safetensors.torch import save_file

            path.mkdir(parents=True, exist_ok=True)
            save_file(self.state_dict(), str(path / "model.safetensors"))

    block, logits_block, _ = _synthetic(0, args)
    return SyntheticTeacher(block, logits_block)


def _synthetic_rows(n: int, args):
    """The training split the synthetic teacher runs over: one-token rows (the idx), in the pass's order."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset

    order = _synthetic(n, args)[2].numpy().astype(np.int64)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    return Dataset(pa.table({
        "idx": order,
        "input_ids": pa.ListArray.from_arrays(offsets, pa.array(order)),
        "attention_mask": pa.ListArray.from_arrays(offsets, pa.array(np.ones(n, dtype=np.int64))),
        "length": np.ones(n, dtype=np.int64),
    }))


def build_old(args, n: int, path: Path) -> dict:
    """The previous format's writer: lists, torch.cat, sort by idx, save_file; all layers, float32."""
    import torch
    from safetensors.torch import save_file

    base = rss_now_mb()
    start = time.perf_counter()
    idx_parts, logit_parts, cls_parts = [], [], []
    for idx, logits, states in _synthetic_pass(n, list(range(1, args.layers + 1)), args):
        idx_parts.append(idx.clone())
        logit_parts.append(logits.float())
        cls_parts.append(states.float())
    result = {"idx": torch.cat(idx_parts), "logits": torch.cat(logit_parts), "cls": torch.cat(cls_parts)}
    del idx_parts, logit_parts, cls_parts
    order_by_idx = torch.argsort(result["idx"])
    result = {k: v[order_by_idx].contiguous() for k, v in result.items()}
    stored = {"idx": result["idx"], "logits": result["logits"].float(), "cls": result["cls"].to(torch.float32)}
    path.mkdir(parents=True, exist_ok=True)
    save_file(stored, str(path / "train.safetensors"))
    return {"seconds": time.perf_counter() - start, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb(),
            "file_bytes": (path / "train.safetensors").stat().st_size}


def build_new(args, n: int, path: Path) -> dict:
    """The teacher_cache stage's writer: build_teacher_cache over the training split."""
    import dataclasses

    from transformers import default_data_collator

    from pkd.cache.build import build_teacher_cache
    from pkd.data import get_task

    params = _params(args)
    layers = params.patient_layers(args.layers)
    rows = _synthetic_rows(n, args)
    teacher = _synthetic_teacher(args)
    base = rss_now_mb()
    start = time.perf_counter()
    teacher.save_pretrained(path / "teacher")
    # The training split alone: the stage also caches the dev splits, a small fraction at MNLI's size.
    task = dataclasses.replace(get_task(TASK), dev_splits=())
    build_teacher_cache(teacher, task, {"train": rows}, default_data_collator, path / "cache",
                        teacher_dir=path / "teacher", layers=layers, dtype=params.teacher.cache_dtype,
                        batch_size=args.build_batch)
    return {"seconds": time.perf_counter() - start, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb(),
            "file_bytes": (path / "cache" / "train.safetensors").stat().st_size, "stored_layers": layers}


def _lookup_batches(n: int, args):
    import torch

    g = torch.Generator().manual_seed(args.seed + 1)
    if args.lookups:
        return [torch.randint(0, n, (args.lookup_batch,), generator=g) for _ in range(args.lookups)]
    return list(torch.randperm(n, generator=g).split(args.lookup_batch))


def _read(cache, n: int, args, student_layers: list[int]) -> dict:
    block = _synthetic(0, args)[0]
    batches = _lookup_batches(n, args)
    times = []
    for k, idx in enumerate(batches):
        t0 = time.perf_counter()
        _, states = cache.rows(idx, student_layers)
        times.append(time.perf_counter() - t0)
        if k % 97 == 0:  # the rows are the right ones (float16 rounding aside)
            want = block[idx % BLOCK][:, [layer - 1 for layer in student_layers]]
            assert (states - want).abs().max() < 1e-2, "wrong rows"
    times.sort()
    return {"batches": len(batches), "lookup_ms_median": 1000 * times[len(times) // 2],
            "lookup_ms_p90": 1000 * times[int(len(times) * 0.9)], "lookup_ms_mean": 1000 * sum(times) / len(times)}


def read_old(args, n: int, path: Path) -> dict:
    """The previous reader: load_file of the whole split, rows gathered in memory."""
    from safetensors.torch import load_file

    from pkd.cache.format import TeacherCache

    base = rss_now_mb()
    t0 = time.perf_counter()
    tensors = load_file(str(path / "train.safetensors"))
    cache = TeacherCache(idx=tensors["idx"], logits=tensors["logits"], states=tensors["cls"], manifest={})
    opened = time.perf_counter() - t0
    result = _read(cache, n, args, _student_layers(args))
    return {**result, "open_seconds": opened, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


def read_new(args, n: int, path: Path) -> dict:
    """The distill stage's reader: load_cache, then TeacherCache.rows per batch."""
    from pkd.cache.format import load_cache

    rows = _synthetic_rows(n, args)
    base = rss_now_mb()
    t0 = time.perf_counter()
    cache = load_cache(path / "cache", "train", dataset=rows, teacher_dir=path / "teacher")
    opened = time.perf_counter() - t0
    result = _read(cache, n, args, _student_layers(args))
    return {**result, "open_seconds": opened, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


ROLES = {"build-old": build_old, "build-new": build_new, "read-old": read_old, "read-new": read_new}


def run_role(role: str, n: int, path: Path, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, *argv, "--role", role, "--path", str(path), "--rows", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{role} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {role:9s} rows={n:,}: " + ", ".join(
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()), flush=True)
    return result


def main() -> None:
    args = parse_args()
    if args.role:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(ROLES[args.role](args, args.rows, Path(args.path))))
        return

    from _common import hardware, print_banner, print_table, write_result

    params = _params(args)
    layers, dtype = params.patient_layers(args.layers), params.teacher.cache_dtype
    n_old = max(1, int(args.rows * args.old_fraction))
    scale = args.rows / n_old
    sizes = {"rows": args.rows, "teacher_layers": args.layers, "hidden": args.hidden, "labels": args.labels,
             "new_layers": layers, "new_dtype": dtype, "old_rows": n_old, "old_fraction": args.old_fraction,
             "lookup_batch": args.lookup_batch, "lookups": args.lookups or "one epoch"}
    hw = hardware()
    print_banner("cache_scale", hw, sizes)
    root = Path(tempfile.mkdtemp(prefix="pkd-cache-scale-", dir=args.dir))
    print(f"files    : {root} (deleted at the end); free disk {shutil.disk_usage(root).free / 1e9:.1f} GB", flush=True)
    # Flags the roles need; --rows and --path are set per role.
    passed = ["--layers", str(args.layers), "--hidden", str(args.hidden), "--labels", str(args.labels),
              "--depths", args.depths, "--strategies", args.strategies, "--params", args.params, "--dtype", dtype,
              "--build-batch", str(args.build_batch), "--lookup-batch", str(args.lookup_batch),
              "--lookups", str(args.lookups), "--seed", str(args.seed)]
    try:
        new_build = run_role("build-new", args.rows, root / "new", passed)
        new_read = run_role("read-new", args.rows, root / "new", passed)
        shutil.rmtree(root / "new")
        old_build = run_role("build-old", n_old, root / "old", passed)
        old_read = run_role("read-old", n_old, root / "old", passed)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def extrapolated(result: dict, key: str) -> float:
        """Peak RSS at full size: the baseline plus the part above it, scaled by rows."""
        return result["base_rss_mb"] + (result[key] - result["base_rss_mb"]) * scale

    gb = 1 / 1024
    old = {
        "disk_gb": old_build["file_bytes"] * scale / 1e9,
        "build_peak_gb": extrapolated(old_build, "peak_rss_mb") * gb,
        "build_seconds": old_build["seconds"] * scale,
        "reader_peak_gb": extrapolated(old_read, "peak_rss_mb") * gb,
        "reader_open_seconds": old_read["open_seconds"] * scale,
        "lookup_ms": old_read["lookup_ms_median"],
        "lookup_p90_ms": old_read["lookup_ms_p90"],
    }
    new = {
        "disk_gb": new_build["file_bytes"] / 1e9,
        "build_peak_gb": new_build["peak_rss_mb"] * gb,
        "build_seconds": new_build["seconds"],
        "reader_peak_gb": new_read["peak_rss_mb"] * gb,
        "reader_open_seconds": new_read["open_seconds"],
        "lookup_ms": new_read["lookup_ms_median"],
        "lookup_p90_ms": new_read["lookup_ms_p90"],
    }
    old["build_peak_over_file"] = old["build_peak_gb"] * 1024**3 / (old["disk_gb"] * 1e9)
    new["build_peak_over_file"] = new["build_peak_gb"] * 1024**3 / (new["disk_gb"] * 1e9)
    ext = f" (x{scale:.0f} extrap.)" if scale != 1 else ""
    rows = [
        ["disk size (GB)", old["disk_gb"], new["disk_gb"], old["disk_gb"] / new["disk_gb"], ext],
        ["build peak RSS (GiB)", old["build_peak_gb"], new["build_peak_gb"], old["build_peak_gb"] / new["build_peak_gb"], ext],
        ["build peak / file size", old["build_peak_over_file"], new["build_peak_over_file"], None, "target NEW < 2"],
        ["build time (s)", old["build_seconds"], new["build_seconds"], old["build_seconds"] / new["build_seconds"], ext],
        ["reader peak RSS (GiB)", old["reader_peak_gb"], new["reader_peak_gb"], old["reader_peak_gb"] / new["reader_peak_gb"], ext + " target NEW < 1"],
        ["reader open (s)", old["reader_open_seconds"], new["reader_open_seconds"], None, ext],
        [f"lookup, batch {args.lookup_batch}, median (ms)", old["lookup_ms"], new["lookup_ms"], old["lookup_ms"] / new["lookup_ms"], "measured"],
        [f"lookup, batch {args.lookup_batch}, p90 (ms)", old["lookup_p90_ms"], new["lookup_p90_ms"], old["lookup_p90_ms"] / new["lookup_p90_ms"], "measured"],
    ]
    print(f"\nbaselines: process RSS after imports: build {new_build['base_rss_mb']:.0f} MiB, "
          f"reader {new_read['base_rss_mb']:.0f} MiB (old: {old_build['base_rss_mb']:.0f} / {old_read['base_rss_mb']:.0f})")
    print_table(["", "OLD (12 layers fp32, whole)", f"NEW ({len(layers)} layers {dtype}, streamed)", "OLD/NEW", "note"],
                [[r[0], r[1], r[2], r[3], r[4]] for r in rows],
                title=f"MNLI-shaped teacher cache, {args.rows:,} rows; OLD measured at {n_old:,} rows and scaled x{scale:.2f}")
    write_result("cache_scale", {"hardware": hw, "sizes": sizes, "old": old, "new": new,
                                 "raw": {"build_new": new_build, "read_new": new_read,
                                         "build_old": old_build, "read_old": old_read}}, args.json)


if __name__ == "__main__":
    main()
