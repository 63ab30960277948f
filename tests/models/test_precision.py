"""The precision switch: what a stage runs in, and what reaches Trainer and autocast."""
import pytest
import torch

from pkd.models.precision import autocast, resolve_precision, trainer_flags


def test_fp32_is_kept_everywhere():
    assert resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize("requested", ["bf16", "fp16"])
def test_mixed_precision_on_a_cpu_falls_back_to_fp32_with_one_warning(requested, capsys):
    assert resolve_precision(requested, "cpu") == "fp32"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: precision:") and "running in fp32" in err[0]


def test_bf16_on_a_gpu_without_bf16_falls_back(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert resolve_precision("bf16", "cuda") == "fp32"
    assert "V100) does not support bf16" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("bf16", "cuda") == "bf16"
    assert resolve_precision("fp16", "cuda") == "fp16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="allowed: fp32, bf16, fp16"):
        resolve_precision("fp8", "cpu")


def test_trainer_flags_and_autocast():
    on_cpu = {} if torch.cuda.is_available() else {"use_cpu": True}  # what makes torchrun DDP on a CPU
    assert trainer_flags("fp32") == {"bf16": False, "fp16": False, **on_cpu}
    assert trainer_flags("bf16")["bf16"] is True
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
            trainer_flags("fp16")
    layer = torch.nn.Linear(4, 4)
    with autocast("bf16", "cpu"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
