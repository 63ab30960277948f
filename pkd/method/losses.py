"""PKD losses as pure tensor functions (docs/method.md, "Loss").

    L = (1 - alpha) * L_CE + alpha * L_DS + beta * L_PT

Suffixes: _s = student, _t = teacher. Teacher tensors are detached, so the
gradient reaches the student only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pkd.allowed_values import KD_REDUCTIONS
from pkd.errors import ConfigError


@dataclass(frozen=True)
class LossConfig:
    """alpha: weight of the soft-label loss L_DS; beta: of the patient loss L_PT.
    temperature: T of L_DS. matched_layers: the teacher layers (1-based) that student layers
    1..M-1 learn from, the strategy's layer map (needed when beta > 0). kd_reduction: "mean" (the authors') or
    "batchmean". normalize_patience: L2-normalise the states before L_PT. projection: map the student's
    states to the teacher's width with learned linear maps before L_PT (pkd/method/projection.py; an extension).

    The default is plain fine-tuning on labels (the teacher, FT students). The pipeline
    makes one from params.yaml with pkd.training.distill.loss_config."""

    alpha: float = 0.0
    beta: float = 0.0
    temperature: float = 1.0
    matched_layers: tuple[int, ...] | None = None
    kd_reduction: str = "mean"
    normalize_patience: bool = True
    projection: bool = False

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha: must be in [0, 1] (got {self.alpha})")
        if self.beta < 0:
            raise ConfigError(f"beta: must be >= 0 (got {self.beta})")
        if self.temperature <= 0:
            raise ConfigError(f"temperature: must be > 0 (got {self.temperature})")
        if self.kd_reduction not in KD_REDUCTIONS:
            raise ConfigError(f"kd_reduction: unknown '{self.kd_reduction}'; allowed: {', '.join(KD_REDUCTIONS)}")
        if self.beta > 0 and not self.matched_layers:
            raise ConfigError("matched_layers: beta > 0 needs the teacher layer map")

    @property
    def distills(self) -> bool:
        """Whether the student learns from the teacher at all (reads its cache)."""
        return self.alpha > 0 or self.beta > 0

    @property
    def projected(self) -> bool:
        """Whether the patient loss runs through a learned projection (only when it is on)."""
        return self.projection and self.beta > 0

    @property
    def patient_layers(self) -> list[int] | None:
        """The teacher layers the patient loss reads; None when beta is 0."""
        return list(self.matched_layers) if self.beta > 0 else None


def label_loss(logits_s: torch.Tensor, labels: torch.Tensor, is_regression: bool = False) -> torch.Tensor:
    """L_CE: cross-entropy to gold labels. logits_s [B, C], labels [B] (MSE when regression)."""
    if is_regression:
        return F.mse_loss(logits_s.squeeze(-1), labels.to(logits_s.dtype))
    return F.cross_entropy(logits_s, labels)


def soft_label_loss(
    logits_s: torch.Tensor,
    logits_t: torch.Tensor,
    temperature: float,
    reduction: str = "mean",
    is_regression: bool = False,
) -> torch.Tensor:
    """L_DS = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)).  logits [B, C].

    reduction="mean" is the authors' choice: PyTorch's elementwise mean over
    batch AND classes, i.e. the per-example KL divided by C. "batchmean" is the
    per-example KL averaged over the batch. For regression there is no softmax:
    MSE between student and teacher outputs (an extension; no paper result).
    """
    logits_t = logits_t.detach()
    if is_regression:
        return F.mse_loss(logits_s, logits_t.to(logits_s.dtype))
    if reduction not in KD_REDUCTIONS:
        raise ConfigError(f"unknown KD reduction '{reduction}'; allowed: {', '.join(KD_REDUCTIONS)}")
    log_p_s = F.log_softmax(logits_s / temperature, dim=-1)
    p_t = F.softmax(logits_t.to(logits_s.dtype) / temperature, dim=-1)
    # Explicit division: PyTorch plans to change what reduction="mean" means.
    denominator = logits_s.numel() if reduction == "mean" else logits_s.shape[0]
    return F.kl_div(log_p_s, p_t, reduction="sum") / denominator * temperature**2


def patient_loss(states_s: torch.Tensor, states_t: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """L_PT: MSE between (L2-normalised) sentence states of matched layers.

    states_s, states_t: [B, L, H] (L = matched layers), the [CLS] state of each
    layer, or its masked token mean with pooling=mean. The mean runs over batch,
    layers and hidden units, as the authors' F.mse_loss on the stacked tensors;
    their beta grid {10, 100, 500, 1000} is calibrated to this mean.
    """
    states_t = states_t.detach().to(states_s.dtype)
    if normalize:
        states_s = F.normalize(states_s, p=2, dim=-1)
        states_t = F.normalize(states_t, p=2, dim=-1)
    return F.mse_loss(states_s, states_t)


def _at_least_fp32(x):
    """Half-precision tensors are promoted to float32; float32/float64 stay as they are."""
    return x.float() if x is not None and x.dtype in (torch.float16, torch.bfloat16) else x


def pkd_loss(
    logits_s: torch.Tensor,
    labels: torch.Tensor,
    config: LossConfig,
    *,
    logits_t: torch.Tensor | None = None,
    states_s: torch.Tensor | None = None,
    states_t: torch.Tensor | None = None,
    is_regression: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = (1 - alpha) L_CE + alpha L_DS + beta L_PT; returns (loss, {"ce","ds","pt"}).

    `config` holds the weights and settings (LossConfig); FT is
    alpha = beta = 0, KD is beta = 0. A term whose weight is 0 is not computed
    (and its inputs may be None), so FT needs no teacher at all. states_s/_t are
    the matched layers' sentence states [B, L, H]. Every term is computed in at
    least float32, whatever the forward's precision (bf16/fp16 autocast gives
    half-precision logits and states).
    """
    alpha, beta = config.alpha, config.beta
    logits_s, logits_t, states_s, states_t = (_at_least_fp32(x) for x in (logits_s, logits_t, states_s, states_t))
    zero = logits_s.new_zeros(())
    ce = label_loss(logits_s, labels, is_regression)
    ds = zero
    if alpha > 0:
        if logits_t is None:
            raise ValueError("alpha > 0 needs the teacher's logits")
        ds = soft_label_loss(logits_s, logits_t, config.temperature, config.kd_reduction, is_regression)
    pt = zero
    if beta > 0:
        if states_s is None or states_t is None:
            raise ValueError("beta > 0 needs student and teacher layer states")
        pt = patient_loss(states_s, states_t, config.normalize_patience)
    loss = (1 - alpha) * ce + alpha * ds + beta * pt
    return loss, {"ce": ce.detach(), "ds": ds.detach(), "pt": pt.detach()}
