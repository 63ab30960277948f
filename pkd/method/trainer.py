"""The distillation Trainer: transformers' Trainer with compute_loss overridden.

Checkpointing, resume, torchrun DDP, mixed precision, length-grouped shuffled
batches and progress bars all come from Trainer. The teacher is never run:
its logits and layer states are read from the cache by example idx.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import Trainer

from pkd.method.losses import LossConfig, pkd_loss
from pkd.method.pooling import layer_states, model_pooling
from pkd.method.projection import attach_projection

if TYPE_CHECKING:  # an annotation only: the teacher stage, which uses this trainer, never reads a cache
    from pkd.cache.format import TeacherCache

# Columns the collator passes along that the model's forward does not take.
NON_MODEL_COLUMNS = ("idx", "length")


class DistillationTrainer(Trainer):
    """Trains with L = (1 - alpha) CE + alpha L_DS + beta L_PT (pkd.method.losses.pkd_loss).

    `loss` (pkd.method.losses.LossConfig, from pkd.training.distill.loss_config) holds the weights and
    the layer map. With the default LossConfig() it is plain fine-tuning (the
    teacher itself and FT students), and needs no cache. Evaluation always scores
    the gold-label loss.
    """

    def __init__(
        self,
        *args,
        loss: LossConfig = LossConfig(),
        cache: TeacherCache | None = None,
        is_regression: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if loss.distills and cache is None:
            raise ValueError("alpha > 0 or beta > 0 needs a teacher cache")
        self.loss_config = loss
        self.cache = cache if loss.distills else None
        self.patient_layers = loss.patient_layers
        if self.cache is not None:  # refused here, before any step, not at the first batch
            self.cache.require_pooling(model_pooling(self.model))
            self.cache.require_layers(self.patient_layers)
        # Trained with the student, saved in its checkpoints, detached before the final save.
        self.projection = (attach_projection(self.model, len(self.patient_layers), self.cache.hidden_size)
                           if loss.projected and self.cache is not None else None)
        self.is_regression = is_regression
        # Loss terms summed on the model's device: read once per log, never per step
        # (a float() per step would wait for the GPU every step).
        self.loss_sums: dict[str, torch.Tensor] = {}
        self.loss_count = 0

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        # Trainer passes LengthGroupedSampler the `length` column as datasets returns it, a lazy
        # Column: each lengths[i] is then a table lookup, and grouping does thousands per epoch
        # (2.6 s per student at 1,000 examples; benchmarks/studies/length_sampler.py). Same batches as a list.
        lengths = getattr(sampler, "lengths", None)
        if lengths is not None and not isinstance(lengths, list):
            sampler.lengths = list(lengths)
        return sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None, **kwargs):
        idx = inputs.pop("idx")
        for column in NON_MODEL_COLUMNS:
            inputs.pop(column, None)
        labels = inputs.pop("labels")
        distilling = model.training and self.cache is not None
        need_hidden = distilling and self.patient_layers is not None
        outputs = model(**inputs, output_hidden_states=need_hidden)
        logits_t = states_t = states_s = None
        if distilling:
            logits_t, states_t = self.cache.rows(idx, self.patient_layers)
            logits_t = logits_t.to(outputs.logits.device)
            if need_hidden:
                states_t = states_t.to(outputs.logits.device)
                # Student layers 1..M-1 ([CLS], or the mean with pooling=mean); layer M feeds the classifier.
                depth = len(outputs.hidden_states) - 1
                states_s = layer_states(
                    outputs.hidden_states, inputs.get("attention_mask"), model_pooling(self.model), list(range(1, depth))
                )
                if self.projection is not None:
                    states_s = self.projection(states_s)
        # Evaluation scores the gold labels only: the default LossConfig.
        loss, parts = pkd_loss(
            outputs.logits,
            labels,
            self.loss_config if distilling else LossConfig(),
            logits_t=logits_t,
            states_s=states_s,
            states_t=states_t,
            is_regression=self.is_regression,
        )
        if model.training:
            for name, value in parts.items():
                total = self.loss_sums.get(name)
                self.loss_sums[name] = value if total is None else total + value
            self.loss_count += 1
        return (loss, outputs) if return_outputs else loss

    def pop_epoch_losses(self) -> dict[str, float]:
        """Mean of each loss term since the last call (one epoch), then reset: one host sync."""
        names = list(self.loss_sums)
        means = (torch.stack([self.loss_sums[k] for k in names]) / max(self.loss_count, 1)).tolist() if names else []
        self.loss_sums, self.loss_count = {}, 0
        return {f"loss_{k}": v for k, v in zip(names, means)}
