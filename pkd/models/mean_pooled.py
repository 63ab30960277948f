"""The mean-pooled classifier: the family's encoder, dropout and a linear head on the masked mean.

A mean-pooled classifier is the family's encoder (transformers' base model,
without BERT's pooler), dropout and a linear head on the masked mean of the
last layer (pkd.method.pooling), for every family of pkd.models.families. It is
saved with its own config type, `pkd_mean_<family>` (`pkd_mean_bert`,
`pkd_mean_mpnet`, ...: the family's config plus `pkd_pooling`), registered here
with transformers' Auto classes: with this module imported,
`AutoModelForSequenceClassification.from_pretrained` rebuilds it as it was
trained; without it, transformers refuses the unknown model type instead of
building a [CLS] classifier on an untrained pooler.
`pkd.models.loading.load_classifier` loads either kind.
"""
from __future__ import annotations

import inspect

from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from pkd.method.pooling import pool
from pkd.models.families import (
    FAMILIES,
    MEAN_POOLED_PREFIX,
    Family,
    config_class,
    encoder_class,
    get_family,
)

# Config fields families use for the classifier's dropout, first found wins (DistilBERT: seq_classif_dropout).
_DROPOUT_FIELDS = ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "dropout")


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
        if token_type_ids is not None:  # only for encoders that take them (pkd.models.families.model_inputs)
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
