"""Models: checkpoints in, classifiers out, and how they run.

`loading` builds teachers and students and loads saved classifiers, `families` says how
each encoder family is addressed, `mean_pooled` is the mean-pooled classifier,
`split_checkpoint` assembles a checkpoint shipped in parts, `precision` sets autocast,
`onnx` converts a classifier to ONNX (fp32, int8) and runs it.
"""
