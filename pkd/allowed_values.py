"""The allowed values of the method's named settings, in one torch-free module.

Each tuple belongs to the module that acts on it (named beside it), which
checks its argument against it. They live here, not there, because the params
schema (pkd.pipeline.params) validates params.yaml with them before any heavy import: the
method modules load torch and transformers, and the report stage, the presets and
the sweep table, which read the schema, never load either. The method modules in
turn never load the schema (tests/test_imports.py).
"""

POOLINGS = ("cls", "mean")  # sentence state for the classifier and the patient loss (pkd.method.pooling)
PRECISIONS = ("fp32", "bf16", "fp16")  # autocast of the forward passes (pkd.models.precision)
CACHE_DTYPES = ("float32", "float16", "bfloat16")  # teacher cache states on disk (pkd.cache.format)
KD_REDUCTIONS = ("mean", "batchmean")  # soft-label loss reduction (pkd.method.losses.soft_label_loss)
INT8_RECIPES = (  # dynamic int8 quantisation of the ONNX export (pkd.models.onnx.quantize_int8)
    "default", "per_channel", "reduce_range", "per_channel+reduce_range", "matmul_only", "per_channel+matmul_only",
    "fp32_head", "per_channel+fp32_head", "preprocess", "fused", "fused+per_channel", "fused+per_channel+matmul_only",
)
SELECTIONS = ("last", "best_dev")  # which epoch of each run the report scores (pkd.report.selection)
