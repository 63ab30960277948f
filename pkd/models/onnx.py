"""A classifier as ONNX (fp32) and a dynamically quantised int8 variant, run by ONNX Runtime.

An export directory is self-contained: `model.onnx`, `model_int8.onnx`, the
model's `config.json` (labels, task, pooling) and its tokenizer files, so
`pkd predict` and the MLflow model need nothing else. The export stage
(pkd.deploy.export) and the timing stage's ONNX rows (pkd.evaluation.timing) write them here.

Exporter: torch.onnx's TorchScript-based exporter (`dynamo=False`). With torch
2.13 both exporters give the same logits (max abs diff ~1e-7 on BERT); the
TorchScript one takes ~2 s instead of ~12 s per model and writes one file
instead of a graph plus an external-data file. Inputs and the logits have
dynamic batch and sequence axes; the inputs are those the model takes
(token_type_ids only for families whose forward has it: not MPNet, DistilBERT).
"""
from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pkd.models.families import model_inputs

ONNX_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # the ONNX inputs' order, of those a model takes
OPSET = 17
# Everything of a saved model directory except its PyTorch weights (tokenizer files of every family).
_KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
         "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spm.model", "added_tokens.json")


class _Logits(nn.Module):
    """Positional inputs, in the order of `names` -> logits only (ONNX wants plain tensors)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.names, inputs))).logits


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write `model` (a sequence classifier) to `path` as ONNX with dynamic batch/sequence axes."""
    path = Path(path)
    names = [name for name in INPUT_NAMES if name in model_inputs(model)]
    wrapper = _Logits(model, names).eval()  # eval(): no dropout in the traced graph
    # Any ids of the vocabulary trace the same graph; the second row is padded.
    ids = torch.tensor([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]], dtype=torch.long) % model.config.vocab_size
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=torch.long)
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript exporter
        torch.onnx.export(
            wrapper, tuple(example[name] for name in names), str(path),
            input_names=names, output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return path


# Dynamic int8 recipes (weights int8, activations quantised per batch at run time), compared
# side by side by benchmarks/studies/int8_recipes.py (benchmarks/README.md):
#   per_channel:   one weight scale per output channel instead of one per tensor;
#   reduce_range:  7-bit weights, which avoids int16 saturation in VNNI-less int8 kernels;
#   matmul_only:   only MatMul is quantised; the embeddings (Gather) stay fp32;
#   fp32_head:     the classifier's own nodes stay fp32 (a linear head exports as Gemm, which
#                  dynamic quantisation leaves in fp32 anyway; a head with a MatMul changes);
#   preprocess:    ONNX Runtime's quant_pre_process (shape inference, graph optimisation) first;
#   fused:         onnxruntime.transformers' optimiser first (fused attention, LayerNorm, GELU).
RECIPE_OPTIONS = {  # one entry per name of pkd.allowed_values.INT8_RECIPES
    "default": {},
    "per_channel": {"per_channel": True},
    "reduce_range": {"reduce_range": True},
    "per_channel+reduce_range": {"per_channel": True, "reduce_range": True},
    "matmul_only": {"op_types_to_quantize": ["MatMul"]},
    "per_channel+matmul_only": {"per_channel": True, "op_types_to_quantize": ["MatMul"]},
    "fp32_head": {"fp32_head": True},
    "per_channel+fp32_head": {"per_channel": True, "fp32_head": True},
    "preprocess": {"preprocess": True},
    "fused": {"fused": True},
    "fused+per_channel": {"fused": True, "per_channel": True},
    "fused+per_channel+matmul_only": {"fused": True, "per_channel": True, "op_types_to_quantize": ["MatMul"]},
}
# params.yaml's export.int8_recipe when not given: over the default run's 16 students it lost
# 0.06 points on average and at most 0.8 (default: 0.58 and 1.7; benchmarks/README.md).
INT8_RECIPE = "per_channel"


def quantize_int8(src: str | Path, dst: str | Path, recipe: str = INT8_RECIPE) -> Path:
    """Dynamic int8 quantisation of `src` by one of pkd.allowed_values.INT8_RECIPES (weights int8)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if recipe not in RECIPE_OPTIONS:
        raise ValueError(f"unknown int8 recipe '{recipe}'; allowed: {', '.join(RECIPE_OPTIONS)}")
    options = dict(RECIPE_OPTIONS[recipe])
    src, dst = Path(src), Path(dst)
    if options.pop("fused", False):
        src = _fused(src, dst.with_suffix(".fused.onnx"))
    if options.pop("preprocess", False):
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = dst.with_suffix(".pre.onnx")
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # symbolic inference fails on the traced graph
        src = pre
    if options.pop("fp32_head", False):
        options["nodes_to_exclude"] = [n.name for n in onnx.load(str(src)).graph.node if "classifier" in n.name]
    # Fused and pre-processed graphs have contrib ops whose output types ONNX's shape inference
    # cannot tell; their tensors are float32.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **options)
    for tmp in (dst.with_suffix(".fused.onnx"), dst.with_suffix(".pre.onnx")):
        tmp.unlink(missing_ok=True)
    return dst


def _fused(src: Path, dst: Path) -> Path:
    """onnxruntime.transformers' graph optimiser for BERT-like encoders (heads and width read from the graph)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=1).save_model_to_file(str(dst))
    return dst


def copy_metadata(model_dir: str | Path, out_dir: str | Path) -> None:
    """config.json and the tokenizer files of a saved model, without its weights."""
    for name in _KEEP:
        if (Path(model_dir) / name).exists():
            shutil.copy2(Path(model_dir) / name, Path(out_dir) / name)


class OnnxExport(NamedTuple):
    fp32: Path  # model.onnx
    int8: Path  # model_int8.onnx
    seconds: dict[str, float]  # {"export": ..., "quantize": ...}


def export_dir(model, out_dir: str | Path, *, model_dir: str | Path | None = None,
               recipe: str = INT8_RECIPE) -> OnnxExport:
    """`model` as ONNX in `out_dir`, and its int8 variant by `recipe`. With `model_dir` (where the model
    is saved) the directory is self-contained: config.json and the tokenizer files join them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model_dir is not None:
        copy_metadata(model_dir, out_dir)
    start = time.perf_counter()
    fp32 = export_onnx(model, out_dir / ONNX_FILE)
    exported = time.perf_counter()
    int8 = quantize_int8(fp32, out_dir / INT8_FILE, recipe)
    return OnnxExport(fp32, int8, {"export": exported - start, "quantize": time.perf_counter() - exported})


class OnnxClassifier:
    """An ONNX Runtime session that takes the same padded batches as the PyTorch model."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # same as PyTorch's
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch) -> np.ndarray:
        feed = {}
        for name in self.input_names:
            value = batch.get(name)
            if value is None and name == "token_type_ids":  # tokenizers that make none
                value = np.zeros_like(np.asarray(batch["input_ids"]))
            feed[name] = np.asarray(value, dtype=np.int64)
        return self.session.run(["logits"], feed)[0]


def onnx_logits(classifier: OnnxClassifier, dataset, collator, batch_size: int = 64) -> np.ndarray:
    """Logits [n, C] in dataset order, batches of length-sorted examples (as evaluate.predict_logits)."""
    order = np.argsort(np.asarray(dataset["length"]), kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        rows = dataset.select(chosen)
        batch = collator([{k: r[k] for k in classifier.input_names if k in r} for r in rows])
        logits = classifier({k: v.numpy() for k, v in batch.items()})
        if out is None:
            out = np.zeros((len(dataset), logits.shape[1]), dtype=np.float32)
        out[chosen] = logits
    return out


def agreement(logits_ref: np.ndarray, logits: np.ndarray, is_regression: bool = False) -> dict[str, float]:
    """Max abs logit difference and the share of identical predictions (regression: |diff| < 1e-3)."""
    diff = np.abs(logits_ref - logits)
    if is_regression:
        same = diff[:, 0] < 1e-3
    else:
        same = logits_ref.argmax(-1) == logits.argmax(-1)
    return {"max_abs_diff": float(diff.max()), "agreement": float(same.mean())}


def size_mb(path: str | Path) -> float:
    """Size on disk of a file, or of all files under a directory, in MB (1e6 bytes)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6
