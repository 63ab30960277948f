"""Tokenisation for the prepare stage (pkd/prepare.py)."""
from pkd.data import get_task, load_task
from pkd.models import load_tokenizer
from pkd.prepare import tokenize


def test_tokenisation_shows_a_progress_bar_named_after_the_task(tiny_bert, capfd):
    task = get_task("builtin_pair")
    splits = load_task(task.name, "builtin", seed=0, builtin_train_size=40, builtin_dev_size=20)
    out = tokenize(splits, load_tokenizer(str(tiny_bert)), task, 32)
    assert len(out["train"]) == 40 and max(out["train"]["length"]) <= 32
    assert "tokenise builtin_pair" in capfd.readouterr().err
