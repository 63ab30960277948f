"""Deployment: a trained student as ONNX (fp32, int8), labelling text, and as an MLflow model.

`export` writes and checks the ONNX files, `predict` labels sentences with a saved
or exported model (`pkd predict`), `serving` wraps an export as an MLflow pyfunc
model. Nothing in training or evaluation imports this package.
"""
