"""Stage `export`: one student -> ONNX fp32 + int8, checked against PyTorch on dev, logged to MLflow.

Opt-in (`export.enabled`, params.yaml): when off, export.tasks is empty and
dvc.yaml has no export stage at all.
"""
import sys
import tempfile

from pkd.io import atomic_dir, write_json
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args

MATRIX = ("task", "strategy", "depth", "seed")


def main() -> None:
    from datasets import load_from_disk

    from pkd.data import prepared_task
    from pkd.deploy.export import ExportCheckError, deployable, export_and_score, input_example
    from pkd.pipeline.tracking import stage_run

    args = stage_args(*MATRIX)
    params = load_checked_params()
    name = paths.student_name(args.strategy, args.depth, args.seed)
    out, metrics = paths.onnx_model(args.task, args.strategy, args.depth, args.seed), paths.export_metrics(args.task, name)
    task = prepared_task(args.task, paths.prepared(args.task))
    dev = load_from_disk(str(paths.prepared(task.name)))[task.dev_splits[0]]
    model_dir = paths.student_model(task.name, args.strategy, args.depth, args.seed)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model directory not found")
    tags = {"task": task.name, "strategy": args.strategy, "depth": args.depth, "seed": args.seed}
    with stage_run("export", params={"export": params.export.model_dump(), "model_dir": str(model_dir)}, tags=tags) as run:
        with atomic_dir(out) as tmp:
            try:
                record = export_and_score(model_dir, tmp, dev, task, min_agreement=params.export.min_agreement,
                                          recipe=params.export.int8_recipe)
            except ExportCheckError as err:
                sys.exit(f"error: {err}")
        seconds = record.pop("seconds")  # to MLflow only: the metrics file stays reproducible
        record = {"model": name, "strategy": args.strategy, "depth": args.depth, "seed": args.seed, "enabled": True, **record}
        write_json(metrics, record)
        run.log_metrics({**{k: v for k, v in record.items() if isinstance(v, dict)}, "seconds": seconds})
        with tempfile.TemporaryDirectory() as tmp:
            run.log_model(deployable(out, tmp), input_example(dev, task.has_pair))


if __name__ == "__main__":
    run_stage(main)
