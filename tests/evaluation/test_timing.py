"""Inference timing: students take the architecture of their init checkpoint."""
from tiny_models import save_tiny_bert
from transformers import DataCollatorWithPadding

from pkd.evaluation.timing import time_depths
from pkd.models.loading import load_tokenizer


def test_students_are_timed_with_the_init_checkpoints_width(tmp_path, tiny_bert):
    wide = save_tiny_bert(tmp_path / "wide", layers=8, hidden=48)
    tokenizer = load_tokenizer(str(tiny_bert))
    features = [dict(tokenizer(f"a short sentence number {i}")) for i in range(4)]
    collator = DataCollatorWithPadding(tokenizer)

    def parameters(student_dir):
        record = time_depths(str(tiny_bert), [2], features, collator, 2, warmup=0, repeats=1, pooling="cls",
                             device="cpu", student_checkpoint_dir=student_dir)
        return {m["model"]: m["parameters"] for m in record["models"]}

    same, wider = parameters(None), parameters(str(wide))
    assert same["teacher"] == wider["teacher"]  # the teacher is always the teacher checkpoint
    assert same["student-2"] < same["teacher"]
    # 48 wide instead of 32: the embeddings alone (30522 x width) make it larger.
    assert wider["student-2"] > same["teacher"] and wider["student-2"] - same["student-2"] > 30522 * 16


def test_models_are_timed_with_the_pipelines_pooling(tiny_bert):
    """Mean-pooled models (the default) have no BERT pooler: what is timed is what the pipeline trains."""
    tokenizer = load_tokenizer(str(tiny_bert))
    features = [dict(tokenizer(f"a short sentence number {i}")) for i in range(4)]

    def parameters(pooling):
        record = time_depths(str(tiny_bert), [2], features, DataCollatorWithPadding(tokenizer), 2, warmup=0,
                             repeats=1, pooling=pooling, device="cpu")
        return {m["model"]: m["parameters"] for m in record["models"]}

    cls, mean = parameters("cls"), parameters("mean")
    pooler = 32 * 32 + 32  # BERT's pooler: a hidden x hidden dense layer
    assert cls["teacher"] - mean["teacher"] == pooler and cls["student-2"] - mean["student-2"] == pooler
