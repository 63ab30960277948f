"""The paper's method: losses, teacher layer maps, the strategy registry, pooling, the
learned projection (an extension) and the distillation Trainer.

These modules import torch, transformers and each other (plus pkd.errors and
pkd.allowed_values), never the pipeline: a user who wants only the loss loads no
params schema (tests/test_imports.py).
"""
