"""Scoring and GLUE submission files (pkd/evaluate.py)."""
import torch
from transformers import DataCollatorWithPadding

from pkd.data import get_task
from pkd.models import build_teacher, load_tokenizer

TASK = get_task("builtin_sentiment")


def test_evaluate_shows_progress(tiny_bert, tiny_splits, monkeypatch):
    import pkd.evaluate as evaluate
    from test_teacher_cache import RecordingBar

    RecordingBar.bars = []
    monkeypatch.setattr(evaluate, "tqdm", RecordingBar)
    model = build_teacher(str(tiny_bert), TASK, seed=0)
    dev = tiny_splits["dev"]
    logits = evaluate.predict_logits(model, dev, DataCollatorWithPadding(load_tokenizer(str(tiny_bert))), batch_size=16)
    assert logits.shape == (len(dev), 2)
    (bar,) = RecordingBar.bars
    assert bar.total == bar.steps == -(-len(dev) // 16) and bar.desc.startswith("predict")
