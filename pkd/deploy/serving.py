"""An exported student as an MLflow pyfunc model that takes text, not token ids.

    model = mlflow.pyfunc.load_model("models:/pkd-sst2/latest")
    model.predict(pd.DataFrame({"text_a": ["a gripping, funny film"]}))
    #   label     prob_negative  prob_positive
    #   positive  0.03           0.97

Pair tasks take a `text_b` column as well. The model's artifact is an export
directory holding the int8 ONNX model, config.json and the tokenizer; ONNX
Runtime runs it (pkd.deploy.predict.Predictor). Loading needs `pkd` installed.
pkd.pipeline.tracking logs and registers these models; this module only defines them.
"""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

ARTIFACT = "export"


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pkd.deploy.predict import Predictor
        from pkd.models.onnx import INT8_FILE, ONNX_FILE

        root = Path(context.artifacts[ARTIFACT])
        onnx = root / INT8_FILE if (root / INT8_FILE).is_file() else root / ONNX_FILE
        self.predictor = Predictor(onnx)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        task = self.predictor.task
        missing = [c for c in ("text_a", "text_b")[: 1 + task.has_pair] if c not in model_input.columns]
        if missing:
            raise ValueError(f"task {task.name}: input needs column(s) {', '.join(missing)}")
        texts_b = model_input["text_b"].astype(str).tolist() if task.has_pair else None
        labels, probs = self.predictor.predict(model_input["text_a"].astype(str).tolist(), texts_b)
        if probs is None:
            return pd.DataFrame({"score": labels})
        return pd.DataFrame({"label": labels, **{f"prob_{n}": probs[:, i] for i, n in enumerate(self.predictor.labels)}})
