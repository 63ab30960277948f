"""Inference timing: students take the architecture of their init checkpoint."""
from transformers import DataCollatorWithPadding

from pkd.models import load_tokenizer
from pkd.testing import save_tiny_bert
from pkd.timing import time_depths


def test_students_are_timed_with_the_init_checkpoints_width(tmp_path, tiny_bert):
    wide = save_tiny_bert(tmp_path / "wide", layers=8, hidden=48)
    tokenizer = load_tokenizer(str(tiny_bert))
    features = [dict(tokenizer(f"a short sentence number {i}")) for i in range(4)]
    collator = DataCollatorWithPadding(tokenizer)

    def parameters(student_dir):
        record = time_depths(str(tiny_bert), [2], features, collator, 2, warmup=0, repeats=1,
                             device="cpu", student_checkpoint_dir=student_dir)
        return {m["model"]: m["parameters"] for m in record["models"]}

    same, wider = parameters(None), parameters(str(wide))
    assert same["teacher"] == wider["teacher"]  # the teacher is always the teacher checkpoint
    assert same["student-2"] < same["teacher"]
    # 48 wide instead of 32: the embeddings alone (30522 x width) make it larger.
    assert wider["student-2"] > same["teacher"] and wider["student-2"] - same["student-2"] > 30522 * 16
