"""Which token state stands for a sentence: [CLS] (the paper) or the masked mean.

PKD matches, and classifies from, the [CLS] state (PKD.md). That presumes a
checkpoint whose [CLS] carries the sentence, as BERT's does after next-sentence
pre-training. The embedded default checkpoint (all-MiniLM-L6-v2) was trained
with mean pooling instead: below its top layer the [CLS] state is the same
vector for every input (cosine > 0.9999), so a student made of its first M
layers cannot learn from [CLS] at all. `pooling: mean` uses the masked mean of
the token states instead, for the classifier input and for the patient loss,
while the rest of the method is unchanged.

A mean-pooled model is saved with its own config type, `pkd_mean_bert`,
registered here with transformers' Auto classes: with pkd imported,
`AutoModelForSequenceClassification.from_pretrained` rebuilds it as it was
trained; without pkd, transformers refuses the unknown model type instead of
building a [CLS] classifier on an untrained pooler. `pkd.models.load_classifier`
loads either kind.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from pkd.choices import POOLINGS
from pkd.errors import ConfigError


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


class MeanBertConfig(BertConfig):
    """BertConfig of a mean-pooled classifier; its own model_type keeps it from loading as [CLS] BERT."""

    model_type = "pkd_mean_bert"

    def __init__(self, pkd_pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.pkd_pooling = "mean"

    @classmethod
    def from_bert(cls, config: BertConfig) -> MeanBertConfig:
        fields = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures")}
        return cls(**fields)


class MeanPooledBertForSequenceClassification(BertForSequenceClassification):
    """BERT with the classifier on the masked mean of the last layer instead of pooler([CLS]).

    BERT's pooler is not built: it would be an unused, untrained layer.
    """

    config_class = MeanBertConfig

    def __init__(self, config: BertConfig):
        BertPreTrainedModel.__init__(self, config)  # BertForSequenceClassification's would add the pooler
        self.num_labels = config.num_labels
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

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


AutoConfig.register(MeanBertConfig.model_type, MeanBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(MeanBertConfig, MeanPooledBertForSequenceClassification, exist_ok=True)
