"""Every supported encoder family end to end, on a tiny random model of each:
teacher -> cache -> PKD-Skip student -> evaluate -> ONNX + int8 export -> pkd predict,
and each family's [CLS] and mean-pooled classifiers cut, saved, reloaded and exported."""
import numpy as np
import pytest
import torch
from tiny_models import save_tiny
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from pkd.cache.build import build_teacher_cache
from pkd.cache.format import load_cache
from pkd.data import get_task, load_task
from pkd.data.prepare import tokenize
from pkd.deploy.export import export_and_score
from pkd.deploy.predict import Predictor, predict_file
from pkd.evaluation.evaluate import evaluate_splits
from pkd.method.layer_maps import layer_map
from pkd.method.losses import LossConfig
from pkd.method.pooling import model_pooling
from pkd.models.families import FAMILIES, model_inputs
from pkd.models.loading import (
    build_student,
    build_teacher,
    checkpoint_depth,
    load_classifier,
    load_tokenizer,
)
from pkd.models.onnx import INT8_FILE, export_dir
from pkd.pipeline.params import ConfigError, TrainParams
from pkd.training.train import train_model

TASK = get_task("builtin_sentiment")
PARAMS = TrainParams(epochs=1, batch_size=16, learning_rate=1e-3, train_eval_samples=16)
FAMILY_NAMES = list(FAMILIES)
SENTENCES = ["a wonderful, moving film", "not good at all", "it was fine, the plot is dull but the acting is great"]
# Encoders whose forward has no token_type_ids.
NO_TOKEN_TYPES = {"mpnet", "distilbert"}


def onnx_inputs(name: str, model) -> list[str]:
    """The ONNX graph's inputs: those the model takes and uses (DeBERTa-v2, type_vocab_size 0, ignores token types)."""
    uses_token_types = name not in NO_TOKEN_TYPES and getattr(model.config, "type_vocab_size", 1) > 0
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family(request, tmp_path_factory):
    """(family, tiny pre-trained checkpoint, tokenised splits: 48 train, 16 dev)."""
    path = save_tiny(request.param, tmp_path_factory.mktemp(request.param) / "pretrained")
    splits = load_task(TASK.name, "builtin", seed=0, builtin_train_size=48, builtin_dev_size=16)
    return request.param, path, tokenize(splits, load_tokenizer(str(path)), TASK, 48)


def test_registry_lists_the_families():
    assert set(FAMILY_NAMES) >= {"bert", "roberta", "xlm-roberta", "mpnet", "electra", "deberta-v2", "distilbert"}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_student_is_the_first_layers_and_reloads_through_the_auto_class(family, pooling, tmp_path):
    name, path, splits = family
    assert checkpoint_depth(str(path)) == 4  # DistilBERT's n_layers reads as num_hidden_layers
    teacher = build_teacher(str(path), TASK, seed=0, pooling=pooling).eval()
    assert model_pooling(teacher) == pooling
    assert ("token_type_ids" in model_inputs(teacher)) == (name not in NO_TOKEN_TYPES)
    student = build_student(str(path), 2, TASK, seed=0, pooling=pooling)
    assert student.config.num_hidden_layers == 2
    t_state, s_state = teacher.base_model.state_dict(), student.base_model.state_dict()
    assert s_state.keys() < t_state.keys()  # layers 3, 4 dropped
    for key, value in s_state.items():
        assert torch.equal(value, t_state[key]), key
    # Saved and reloaded through transformers' Auto class (pkd imported): the same model.
    teacher.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(again) is type(teacher)
    batch = DataCollatorWithPadding(load_tokenizer(str(path)))(
        [{k: r[k] for k in model_inputs(teacher) if k in r} for r in splits["dev"].select(range(4))])
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).logits, teacher(**batch).logits)
    # init=finetuned: the student keeps the fine-tuned teacher's head and pooling.
    from_teacher = build_student(str(path), 2, TASK, init="finetuned", finetuned_teacher=tmp_path)
    assert model_pooling(from_teacher) == pooling
    for key, value in from_teacher.state_dict().items():
        if not key.startswith(teacher.base_model_prefix):
            assert torch.equal(value, teacher.state_dict()[key]), key


def test_checkpoint_with_pretraining_heads_is_accepted(family, tmp_path):
    """A family's masked-LM checkpoint (BERT's cls.*, RoBERTa's lm_head.*, DistilBERT's vocab_*,
    ELECTRA's generator_*) has its encoder under the base-model prefix and heads beside it."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    _, path, _ = family
    AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(path)).save_pretrained(tmp_path)
    load_tokenizer(str(path)).save_pretrained(tmp_path)
    assert build_student(str(tmp_path), 2, TASK, pooling="mean").config.num_hidden_layers == 2
    assert build_teacher(str(tmp_path), TASK, pooling="mean").config.num_hidden_layers == 4


def test_renamed_encoder_weights_are_refused_whatever_the_prefix(family, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    _, path, _ = family
    bad = tmp_path / "renamed"
    shutil.copytree(path, bad)
    state = load_file(str(bad / "model.safetensors"))
    key = next(k for k in state if ".layer.0." in k and k.endswith(".weight"))
    state[key.replace(".layer.0.", ".layer.0.renamed.")] = state.pop(key)
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="checkpoint weights do not match") as err:
        build_student(str(bad), 2, TASK)
    assert key.split(".", 1)[-1] in str(err.value) or key in str(err.value)


def test_pipeline_end_to_end(family, tmp_path):
    """With mean pooling, the family-neutral classifier of pkd.method.pooling; [CLS] is the family's own
    transformers classifier (exported and predicted below)."""
    name, path, splits = family
    pooling = "mean"
    tokenizer = load_tokenizer(str(path))
    teacher_dir = tmp_path / "teacher"
    teacher = build_teacher(str(path), TASK, seed=0, pooling=pooling)
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    teacher = load_classifier(teacher_dir)

    layers = layer_map("skip", 4, 2)
    build_teacher_cache(teacher, TASK, splits, DataCollatorWithPadding(tokenizer), tmp_path / "cache",
                        teacher_dir=teacher_dir, layers=layers, dtype="float32")
    cache = load_cache(tmp_path / "cache", "train", dataset=splits["train"], teacher_dir=teacher_dir, pooling=pooling)
    history = train_model(
        build_student(str(path), 2, TASK, seed=0, pooling=pooling), tokenizer, task=TASK, train=splits["train"],
        dev=splits["dev"], params=PARAMS, learning_rate=1e-3, seed=0, checkpoint_dir=tmp_path / "ckpt",
        model_out=tmp_path / "student", history_out=tmp_path / "student.json", cache=cache,
        loss=LossConfig(alpha=0.7, beta=100.0, temperature=10.0, matched_layers=tuple(layers)),
    )
    assert history[-1]["loss_pt"] > 0  # the patient loss read the cached teacher states

    student = load_classifier(tmp_path / "student")
    assert student.config.num_hidden_layers == 2 and model_pooling(student) == pooling
    results = evaluate_splits(student, tokenizer, splits, TASK, tmp_path / "predictions")
    assert results["dev"]["n"] == 16 and 0 <= results["dev"]["accuracy"] <= 1

    record = export_and_score(tmp_path / "student", tmp_path / "onnx", splits["dev"], TASK)
    assert record["onnx_fp32"]["agreement"] == 1.0 and record["onnx_fp32"]["max_abs_diff"] < 1e-4
    assert record["onnx_int8"]["size_mb"] < record["onnx_fp32"]["size_mb"]

    torch_p, onnx_p = Predictor(tmp_path / "student"), Predictor(tmp_path / "onnx")
    assert [i.name for i in onnx_p.model.session.get_inputs()] == onnx_inputs(name, student)
    labels_t, probs_t = torch_p.predict(SENTENCES, batch_size=2)
    labels_o, probs_o = onnx_p.predict(SENTENCES, batch_size=2)
    assert labels_t == labels_o
    np.testing.assert_allclose(probs_t, probs_o, atol=1e-5)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SENTENCES) + "\n")
    assert predict_file(str(tmp_path / "onnx" / INT8_FILE), str(src), str(tmp_path / "out.tsv")) == len(SENTENCES)
    rows = (tmp_path / "out.tsv").read_text().splitlines()
    assert rows[0] == "label\tprob_negative\tprob_positive" and len(rows) == 1 + len(SENTENCES)


def test_timing_runs_every_family(family):
    from pkd.evaluation.timing import time_depths

    _, path, splits = family
    features = [{k: r[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in r}
                for r in splits["dev"].select(range(4))]
    record = time_depths(str(path), [2], features, DataCollatorWithPadding(load_tokenizer(str(path))), 2,
                         warmup=0, repeats=1, pooling="mean", device="cpu")
    assert [(r["model"], r["depth"]) for r in record["models"]] == [("teacher", 4), ("student-2", 2)]
    assert all(r["latency_b1_len128_ms"]["median"] > 0 for r in record["models"])


def test_unsupported_family_is_refused_at_params_validation(tmp_path):
    import yaml
    from conftest import ROOT
    from transformers import GPT2Config, GPT2Model

    from pkd.models.loading import check_checkpoints
    from pkd.pipeline.params import parse_params

    GPT2Model(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["checkpoint"] = str(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_checkpoints(parse_params(raw))
    message = str(err.value)
    assert message.startswith(f"teacher.checkpoint: '{tmp_path}' is a 'gpt2' model") and "\n" not in message
    assert "supported model types: bert, roberta, xlm-roberta, mpnet, electra, deberta-v2, distilbert" in message


def test_cls_classifier_of_each_family_exports_and_predicts(family, tmp_path):
    name, path, _ = family
    model = build_teacher(str(path), TASK, seed=0, pooling="cls").eval()
    model.save_pretrained(tmp_path / "model")
    load_tokenizer(str(path)).save_pretrained(tmp_path / "model")
    export_dir(model, tmp_path / "onnx", model_dir=tmp_path / "model")
    torch_p, onnx_p = Predictor(tmp_path / "model"), Predictor(tmp_path / "onnx")
    assert [i.name for i in onnx_p.model.session.get_inputs()] == onnx_inputs(name, model)
    np.testing.assert_allclose(onnx_p.logits(SENTENCES, batch_size=2), torch_p.logits(SENTENCES), atol=1e-5)
