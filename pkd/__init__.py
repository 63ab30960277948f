"""Patient Knowledge Distillation for BERT (Sun et al., EMNLP 2019)."""

__version__ = "0.1.0"
