"""The plumbing around the stages: the params schema (`params`), the stage runner (`stage`),
every output path (`paths`), MLflow tracking (`tracking`, `environment`), DVC experiments
(`experiments`) and `pkd repro --jobs N` (`parallel_repro`).
"""
