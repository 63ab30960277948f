"""A learned projection for PKD across widths (an extension; not in the paper).

The paper's patient loss compares a student's and a teacher's sentence states
directly, so both must have the same hidden size. With `strategies.<name>.projection:
true`, each matched student layer gets its own linear map to the teacher's width,
as TinyBERT's W_h, trained with the student. The maps exist only to compute the
loss: they are attached to the student under `pkd_projection` while it trains (so
the optimiser, checkpoints, resume and DDP see them) and detached before the
student is saved, so the saved classifier and its ONNX export never hold them.
"""
from __future__ import annotations

import torch
from torch import nn

ATTRIBUTE = "pkd_projection"


class LayerProjection(nn.Module):
    """One Linear(student width -> teacher width) per matched layer: [B, L, Hs] -> [B, L, Ht]."""

    def __init__(self, layers: int, student_width: int, teacher_width: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(layers))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return torch.stack([proj(states[:, i]) for i, proj in enumerate(self.maps)], dim=1)


def attach_projection(model: nn.Module, layers: int, teacher_width: int) -> LayerProjection:
    """Give the student its projection (on the student's device and dtype); returns it."""
    reference = next(model.parameters())
    projection = LayerProjection(layers, model.config.hidden_size, teacher_width)
    model.add_module(ATTRIBUTE, projection.to(device=reference.device, dtype=reference.dtype))
    return projection


def detach_projection(model: nn.Module) -> None:
    """Remove the projection before the student is saved (no-op without one)."""
    if hasattr(model, ATTRIBUTE):
        delattr(model, ATTRIBUTE)
