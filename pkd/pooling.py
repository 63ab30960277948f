"""Which token state stands for a sentence: [CLS] (the paper) or the masked mean.

PKD matches, and classifies from, the [CLS] state (docs/method.md): the first token's,
whatever the family calls it (<s> for RoBERTa and MPNet). That presumes a
checkpoint whose [CLS] carries the sentence, as BERT's does after next-sentence
pre-training. The embedded default checkpoint (all-MiniLM-L6-v2) was trained
with mean pooling instead: below its top layer the [CLS] state is the same
vector for every input (cosine > 0.9999), so a student made of its first M
layers cannot learn from [CLS] at all. `pooling: mean` uses the masked mean of
the token states instead, for the classifier input and for the patient loss,
while the rest of the method is unchanged.

A mean-pooled classifier is the family's encoder (transformers' base model,
without BERT's pooler), dropout and a linear head on the masked mean of the
last layer, for every family of pkd.families. It is saved with its own config
type, `pkd_mean_<family>` (`pkd_mean_bert`, `pkd_mean_mpnet`, ...: the family's
config plus `pkd_pooling`), registered here with transformers' Auto classes:
with pkd imported, `AutoModelForSequenceClassification.from_pretrained`
rebuilds it as it was trained; without pkd, transformers refuses the unknown
model type instead of building a [CLS] classifier on an untrained pooler.
`pkd.models.load_classifier` loads either kind.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from pkd.choices import POOLINGS
from pkd.errors import ConfigError
from pkd.families import (
    FAMILIES,
    MEAN_POOLED_PREFIX,
    Family,
    config_class,
    encoder_class,
    get_family,
)

# Config fields families use for the classifier's dropout, first found wins (DistilBERT: seq_classif_dropout).
_DROPOUT_FIELDS = ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "dropout")


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


class MeanPooledClassifier:
    """The family's encoder + dropout + linear head on the masked mean of the last layer.

    Combined with the family's PreTrainedModel class (its weight init, attention
    backends and `base_model_prefix`, below), so the encoder sits where the
    family's own classifiers keep it (`bert.*`, `mpnet.*`, ...) and loads from
    the same checkpoints. A pooler the encoder could add is not built: it would
    be an unused, untrained layer.
    """

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        encoder = encoder_class(get_family(config))
        no_pooler = {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(encoder).parameters else {}
        setattr(self, self.base_model_prefix, encoder(config, **no_pooler))
        self.num_labels = config.num_labels
        dropout = next((getattr(config, f) for f in _DROPOUT_FIELDS if getattr(config, f, None) is not None), 0.1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        if token_type_ids is not None:  # only for encoders that take them (pkd.families.model_inputs)
            kwargs["token_type_ids"] = token_type_ids
        outputs = self.base_model(
            input_ids=input_ids, attention_mask=attention_mask,
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


def _mean_pooled_classes(family: Family) -> tuple[type, type]:
    """(config class, model class) of the family's mean-pooled classifier, registered with the Auto classes."""
    base_config = config_class(family)
    stem = base_config.__name__.removesuffix("Config")  # Bert, MPNet, DebertaV2, ...
    config_name, model_name = f"MeanPooled{stem}Config", f"MeanPooled{stem}ForSequenceClassification"
    config_cls = type(config_name, (base_config,), {
        "__module__": __name__, "__qualname__": config_name,
        "__doc__": f"{base_config.__name__} of a mean-pooled classifier; its own model_type keeps it "
                   f"from loading as a [CLS] classifier.",
        "model_type": MEAN_POOLED_PREFIX + family.model_type,
        "__annotations__": {"pkd_pooling": str}, "pkd_pooling": "mean",
    })
    family_pretrained = encoder_class(family).__bases__[0]  # BertPreTrainedModel, MPNetPreTrainedModel, ...
    assert issubclass(family_pretrained, PreTrainedModel), family_pretrained
    model_cls = type(model_name, (MeanPooledClassifier, family_pretrained), {
        "__module__": __name__, "__qualname__": model_name, "config_class": config_cls,
    })
    AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
    AutoModelForSequenceClassification.register(config_cls, model_cls, exist_ok=True)
    return config_cls, model_cls


_CLASSES = {name: _mean_pooled_classes(family) for name, family in FAMILIES.items()}
# Module attributes, so that pickle finds them (MeanPooledBertForSequenceClassification, ...).
globals().update({cls.__name__: cls for pair in _CLASSES.values() for cls in pair})


def mean_pooled_config(config: PretrainedConfig) -> PretrainedConfig:
    """The mean-pooled classifier's config for a checkpoint of a supported family (kept if it is one)."""
    config_cls, _ = _CLASSES[get_family(config).model_type]
    if isinstance(config, config_cls):
        return config
    return config_cls(**{k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures")})


def mean_pooled_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The mean-pooled classifier class of the config's family."""
    return _CLASSES[get_family(config).model_type][1]
