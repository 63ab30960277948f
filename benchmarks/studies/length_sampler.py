"""Length-grouped batching: one epoch's batch order from the `length` column as Trainer passes
it (a datasets Column) vs as a list (what pkd.method.trainer.DistillationTrainer passes now).

Study, 2026-12-03, at c04de1f (the change) and its parent, idle machine.
Result: one epoch's batch order from a Column against a list: 0.091 -> 0.0004 s at 1,000
examples (210x), 7.651 -> 0.0323 s at SST-2's 67,349 (237x), the same order; ~23 s per
epoch saved per training stage at SST-2 size, ~0.5 s per student on the default, whose
36 metrics files were byte-identical before and after.
Decision: DistillationTrainer hands LengthGroupedSampler the lengths as a list.

For each size, a datasets.Dataset with a `length` column of random lengths (4..64 tokens,
--seed) feeds transformers' LengthGroupedSampler (batch 32) twice: once with
`dataset["length"]` as datasets returns it, once with `list(dataset["length"])`. Timed:
one `list(iter(sampler))`, the batch order of one epoch (median of --repeats). The two
orders are checked to be identical. Sizes: the built-in tasks' 1,000 and SST-2's 67,349.

    python benchmarks/studies/length_sampler.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import hardware, print_banner, print_table, write_result
from transformers.trainer_pt_utils import LengthGroupedSampler

NAME = "length_sampler"


def epoch_seconds(lengths, repeats: int) -> tuple[float, list[int]]:
    times, order = [], None
    for _ in range(repeats):
        sampler = LengthGroupedSampler(32, lengths=lengths, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        order = list(iter(sampler))
        times.append(time.perf_counter() - start)
    return statistics.median(times), order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 67349])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="where to write the JSON record")
    args = parser.parse_args()
    hw = hardware()
    print_banner(NAME, hw, {"sizes": args.sizes, "repeats": args.repeats, "batch": 32})
    rows, records = [], []
    for size in args.sizes:
        lengths = np.random.default_rng(args.seed).integers(4, 65, size).tolist()
        column = datasets.Dataset.from_dict({"length": lengths})["length"]
        column_s, column_order = epoch_seconds(column, args.repeats)
        list_s, list_order = epoch_seconds(list(column), args.repeats)
        assert column_order == list_order, "the two samplers must give the same batches"
        rows.append([size, type(column).__name__, f"{column_s:.3f}", f"{list_s:.4f}", f"{column_s / list_s:.0f}x"])
        records.append({"size": size, "column_s": column_s, "list_s": list_s})
    print_table(["examples", "column type", "Column (s/epoch)", "list (s/epoch)", "Column/list"], rows,
                title="Batch order of one epoch, LengthGroupedSampler (batch 32)")
    write_result(NAME, {"hardware": hw, "args": vars(args), "results": records}, args.json)


if __name__ == "__main__":
    main()
