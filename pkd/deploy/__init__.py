"""Deployment: a trained student exported and checked, labelling text, and as an MLflow model.

`export` is the export stage's work (ONNX fp32 and int8 through pkd.models.onnx, checked
against PyTorch and scored) and picks the student `register` ships, `predict` labels
sentences with a saved or exported model (`pkd predict`), `serving` wraps an export as
an MLflow pyfunc model. Nothing in training or evaluation imports this package.
"""
