"""Which token state stands for a sentence: [CLS] (the paper) or the masked mean.

PKD matches, and classifies from, the [CLS] state (docs/method.md): the first token's,
whatever the family calls it (<s> for RoBERTa and MPNet). That presumes a
checkpoint whose [CLS] carries the sentence, as BERT's does after next-sentence
pre-training. The embedded default checkpoint (all-MiniLM-L6-v2) was trained
with mean pooling instead: below its top layer the [CLS] state is the same
vector for every input (cosine > 0.9999), so a student made of its first M
layers cannot learn from [CLS] at all. `pooling: mean` uses the masked mean of
the token states instead, for the classifier input and for the patient loss,
while the rest of the method is unchanged. The classifier that reads the mean is
pkd.models.mean_pooled.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pkd.allowed_values import POOLINGS
from pkd.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[B, T, H] token states -> [B, H] sentence state."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ConfigError(f"unknown pooling '{pooling}'; allowed: {', '.join(POOLINGS)}")
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def layer_states(hidden_states, attention_mask, pooling: str, layers: list[int] | None = None) -> torch.Tensor:
    """Pooled state of encoder layers (1-based; default all 1..N) -> [B, L, H]."""
    chosen = range(1, len(hidden_states)) if layers is None else layers
    return torch.stack([pool(hidden_states[i], attention_mask, pooling) for i in chosen], dim=1)


def model_pooling(model: PreTrainedModel) -> str:
    """The pooling a classifier was trained with: pkd records it in the config (`pkd_pooling`);
    a classifier saved by other code has a [CLS]-based head."""
    return getattr(model.config, "pkd_pooling", "cls")
