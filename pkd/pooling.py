"""Which token state stands for a sentence: [CLS] (the paper) or the masked mean.

PKD matches, and classifies from, the [CLS] state (PKD.md). That presumes a
checkpoint whose [CLS] carries the sentence, as BERT's does after next-sentence
pre-training. The embedded default checkpoint (all-MiniLM-L6-v2) was trained
with mean pooling instead: below its top layer the [CLS] state is the same
vector for every input (cosine > 0.9999), so a student made of its first M
layers cannot learn from [CLS] at all. `pooling: mean` uses the masked mean of
the token states instead, for the classifier input and for the patient loss,
while the rest of the method is unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("cls", "mean")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[B, T, H] token states -> [B, H] sentence state."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"unknown pooling '{pooling}'; allowed: {', '.join(POOLINGS)}")
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def layer_states(hidden_states, attention_mask, pooling: str, layers: list[int] | None = None) -> torch.Tensor:
    """Pooled state of encoder layers (1-based; default all 1..N) -> [B, L, H]."""
    chosen = range(1, len(hidden_states)) if layers is None else layers
    return torch.stack([pool(hidden_states[i], attention_mask, pooling) for i in chosen], dim=1)


class MeanPooledBertForSequenceClassification(BertForSequenceClassification):
    """BERT with the classifier on the masked mean of the last layer instead of pooler([CLS])."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        outputs = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            output_hidden_states=output_hidden_states, return_dict=True, **kwargs,
        )
        pooled = pool(outputs.last_hidden_state, attention_mask, "mean")
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
