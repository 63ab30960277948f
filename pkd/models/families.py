"""The encoder families pkd distils: one registry entry per Hugging Face model type.

PKD needs nothing of BERT itself: an encoder that returns its per-layer hidden
states, and a way to keep its first M layers. transformers' Auto classes build
any of these families from a checkpoint, and its configs already map their own
names onto the common ones (`attribute_map`: DistilBERT's `n_layers` reads and
is set as `num_hidden_layers`, its `dim` as `hidden_size`), so a student of
depth M is `from_pretrained(..., num_hidden_layers=M)` for every family here.
What differs is recorded in the entry, and only there:

- `layers`: where the encoder's layer list lives inside the base model (its
  weights `<layers>.<i>.*` above a student's depth are the ones it drops);
- the base model's attribute (`bert`, `roberta`, `deberta`, ...) is the
  model's own `base_model_prefix`, and the inputs a model takes are read
  from its forward's signature (MPNet and DistilBERT take no token_type_ids).

A family not listed here is refused when the teacher checkpoint's config is
read (`require_family`), before any work.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from pkd.errors import ConfigError

# The tokenizer outputs a classifier may take (the rest of a dataset row is not a model input);
# a model gets those its forward accepts (`model_inputs`).
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
# Config types of mean-pooled classifiers (pkd/method/pooling.py): this prefix + the family's model type.
MEAN_POOLED_PREFIX = "pkd_mean_"


@dataclass(frozen=True)
class Family:
    model_type: str  # config.model_type of the family's checkpoints
    layers: str = "encoder.layer"  # the layer list, relative to the base model


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("bert"),
    Family("roberta"),
    Family("xlm-roberta"),
    Family("mpnet"),
    Family("electra"),
    Family("deberta-v2"),
    Family("distilbert", layers="transformer.layer"),
)}


def family_type(model_type: str) -> str:
    """The family's model type, also for a saved mean-pooled classifier (`pkd_mean_<type>`)."""
    return model_type.removeprefix(MEAN_POOLED_PREFIX)


def get_family(config) -> Family:
    """The registry entry of a config (or a model type); KeyError if the family is not supported."""
    model_type = config if isinstance(config, str) else getattr(config, "model_type", "")
    return FAMILIES[family_type(model_type)]


def require_family(config, key: str, checkpoint: str) -> Family:
    """`get_family`, or one line naming the checkpoint's model type and the supported ones."""
    try:
        return get_family(config)
    except KeyError:
        model_type = getattr(config, "model_type", None) or "(none)"
        raise ConfigError(
            f"{key}: '{checkpoint}' is a {model_type!r} model, which pkd cannot distil; "
            f"supported model types: {', '.join(FAMILIES)}"
        ) from None


def config_class(family: Family):
    """The family's transformers config class (BertConfig, MPNetConfig, ...)."""
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[family.model_type]


def encoder_class(family: Family):
    """The family's base model class (BertModel, MPNetModel, ...): the encoder without a head."""
    from transformers import MODEL_MAPPING

    return MODEL_MAPPING[config_class(family)]


def takes_input(model, name: str) -> bool:
    """Whether `model`'s encoder forward accepts the input `name` (token_type_ids: not MPNet, DistilBERT)."""
    return name in inspect.signature(model.base_model.forward).parameters


def model_inputs(model) -> tuple[str, ...]:
    """The tokenizer outputs (MODEL_INPUTS) that `model` takes, in MODEL_INPUTS order."""
    return tuple(name for name in MODEL_INPUTS if takes_input(model, name))
