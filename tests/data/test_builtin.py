import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pkd.data.builtin as builtin
from pkd.data import generate_builtin
from pkd.data.builtin import sentiment_vocab

TASKS = ("builtin_sentiment", "builtin_pair")
REPO = Path(__file__).resolve().parents[2]


def as_rows(dd):
    return {split: ds.to_list() for split, ds in dd.items()}


def test_docstring_says_not_glue():
    assert "NOT GLUE" in builtin.__doc__


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_rows_different_seed_different(task):
    a = as_rows(generate_builtin(task, seed=3, train_size=200, dev_size=50))
    b = as_rows(generate_builtin(task, seed=3, train_size=200, dev_size=50))
    c = as_rows(generate_builtin(task, seed=4, train_size=200, dev_size=50))
    assert a == b
    assert a["train"] != c["train"] and a["dev"] != c["dev"]


_DIGEST = (
    "import hashlib, json; from pkd.data import generate_builtin; "
    "dd = [generate_builtin(t, 7, 300, 100) for t in ('builtin_sentiment', 'builtin_pair')]; "
    "print(hashlib.sha256(json.dumps([{s: d[s].to_list() for s in d} for d in dd]).encode())"
    ".hexdigest())"
)


def test_output_does_not_depend_on_hash_seed():
    # String hashing is randomised per process; set iteration must not leak into the output.
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", _DIGEST], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("task", TASKS)
def test_default_sizes_schema_balance_and_no_duplicates(task):
    start = time.perf_counter()
    dd = generate_builtin(task, seed=0, train_size=3000, dev_size=1000)
    # The brief asks for < 1 s; the bound is loose because CI CPUs are shared.
    assert time.perf_counter() - start < 5
    assert list(dd) == ["train", "dev"]
    assert (len(dd["train"]), len(dd["dev"])) == (3000, 1000)
    for split, ds in dd.items():
        assert ds.features["label"].dtype == "int64"
        assert ds["idx"][:] == list(range(len(ds)))
        labels = ds["label"][:]
        assert set(labels) == {0, 1}
        assert 0.45 <= sum(labels) / len(labels) <= 0.55, split
        texts_b = ds["text_b"][:]
        if task == "builtin_sentiment":
            assert texts_b == [None] * len(ds)
        else:
            assert all(isinstance(t, str) and t for t in texts_b)
    pairs = {s: list(zip(dd[s]["text_a"][:], dd[s]["text_b"][:])) for s in dd}
    assert len(set(pairs["train"])) == 3000 and len(set(pairs["dev"])) == 1000
    assert not set(pairs["train"]) & set(pairs["dev"])


@pytest.mark.parametrize("task", TASKS)
def test_sizes_honoured(task):
    dd = generate_builtin(task, seed=1, train_size=37, dev_size=0)
    assert (len(dd["train"]), len(dd["dev"])) == (37, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="not built in"):
        generate_builtin("sst2", 0, 10, 10)
    with pytest.raises(ValueError, match="train_size"):
        generate_builtin("builtin_pair", 0, -1, 10)


@pytest.mark.parametrize("task", TASKS)
def test_exactly_five_percent_label_noise(task, monkeypatch):
    noisy = generate_builtin(task, seed=0, train_size=1000, dev_size=0)["train"]
    monkeypatch.setattr(builtin, "NOISE_RATE", 0.0)
    clean = generate_builtin(task, seed=0, train_size=1000, dev_size=0)["train"]
    assert noisy["text_a"][:] == clean["text_a"][:]
    flipped = sum(a != b for a, b in zip(noisy["label"][:], clean["label"][:]))
    assert flipped == 50


def test_sentiment_vocab_comes_from_vader():
    pos, neg = sentiment_vocab()
    assert list(pos) == sorted(pos) and list(neg) == sorted(neg)
    assert not set(pos) & set(neg)
    assert all(w.isalpha() and len(w) >= 3 for w in pos + neg)
    lexicon = {}
    for line in builtin._lexicon_lines():
        word, mean = line.split("\t")[:2]
        lexicon[word] = float(mean)
    assert all(lexicon[w] >= 1.5 for w in pos)
    assert all(lexicon[w] <= -1.5 for w in neg)


def test_sentiment_labels_follow_the_rules(monkeypatch):
    """Without noise, simple and negated clauses get the label the rules imply."""
    monkeypatch.setattr(builtin, "NOISE_RATE", 0.0)
    pos, neg = (set(v) for v in sentiment_vocab())
    rows = generate_builtin("builtin_sentiment", 0, 2000, 0)["train"].to_list()
    checked = 0
    for row in rows:
        words = row["text_a"].split()
        # Only the plainest template: "the <noun> was|is <adj>" with one adjective, no fillers.
        if len(words) == 4 and words[0] == "the" and words[2] in ("was", "is"):
            adj = words[3]
            assert row["label"] == (1 if adj in pos else 0), row
            checked += 1
        # "X, but <main clause>" with an un-negated, unmodified main clause.
        if ", but the " in row["text_a"]:
            main = row["text_a"].split(", but ")[1].split()
            if len(main) == 4 and main[2] in ("was", "is", "seemed", "felt") and "," not in main:
                assert row["label"] == (1 if main[3] in pos else 0), row
                checked += 1
    assert checked > 50


def test_pair_texts_share_vocabulary_both_ways(monkeypatch):
    """Overlap must not decide the label: both classes contain near-identical pairs."""
    monkeypatch.setattr(builtin, "NOISE_RATE", 0.0)
    rows = generate_builtin("builtin_pair", 0, 1000, 0)["train"].to_list()

    def same_bag(r):
        return sorted(r["text_a"].replace(",", "").split()) == sorted(
            r["text_b"].replace(",", "").split())

    # Same bag of words, different meaning (subject/object swap) ...
    assert any(same_bag(r) for r in rows if r["label"] == 0)
    # ... and same bag of words, same meaning (clause reordering).
    assert any(same_bag(r) for r in rows if r["label"] == 1)
    assert all(r["text_a"] != r["text_b"] for r in rows)
