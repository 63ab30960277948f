"""Stage `export`: one student -> ONNX fp32 + int8, checked against PyTorch on dev, logged to MLflow.

Opt-in (`export.enabled`, params.yaml): when off, the stage only records that
it was skipped, so the default pipeline stays within its time budget.
"""
import sys
import tempfile

from pkd import paths
from pkd.io import atomic_dir, write_json
from pkd.stage import load_checked_params, run_stage, stage_args
from pkd.switches import export_switches

MATRIX = ("task", "strategy", "depth", "seed")


def skip_unless_enabled() -> bool:
    """When export is off, write the stage's outputs as 'skipped' without importing torch."""
    args = stage_args(*MATRIX)
    if export_switches().get("enabled", False):
        return False
    name = paths.student_name(args.strategy, args.depth, args.seed)
    with atomic_dir(paths.onnx_model(args.task, args.strategy, args.depth, args.seed)) as tmp:
        (tmp / "DISABLED").write_text("export.enabled is false in params.yaml\n")
    write_json(paths.export_metrics(args.task, name), {"task": args.task, "model": name, "enabled": False})
    return True


def main() -> None:
    from datasets import load_from_disk

    from pkd.data import get_task
    from pkd.deploy.export import ExportCheckError, deployable, export_and_score, input_example
    from pkd.tracking import stage_run

    args = stage_args(*MATRIX)
    params = load_checked_params()
    name = paths.student_name(args.strategy, args.depth, args.seed)
    out, metrics = paths.onnx_model(args.task, args.strategy, args.depth, args.seed), paths.export_metrics(args.task, name)
    task = get_task(args.task)
    dev = load_from_disk(str(paths.prepared(task.name)))[task.dev_splits[0]]
    model_dir = paths.student_model(task.name, args.strategy, args.depth, args.seed)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model directory not found")
    tags = {"task": task.name, "strategy": args.strategy, "depth": args.depth, "seed": args.seed}
    with stage_run("export", params={"export": params.export.model_dump(), "model_dir": str(model_dir)}, tags=tags) as run:
        with atomic_dir(out) as tmp:
            try:
                record = export_and_score(model_dir, tmp, dev, task, min_agreement=params.export.min_agreement)
            except ExportCheckError as err:
                sys.exit(f"error: {err}")
        seconds = record.pop("seconds")  # to MLflow only: the metrics file stays reproducible
        record = {"model": name, "strategy": args.strategy, "depth": args.depth, "seed": args.seed, "enabled": True, **record}
        write_json(metrics, record)
        run.log_metrics({**{k: v for k, v in record.items() if isinstance(v, dict)}, "seconds": seconds})
        with tempfile.TemporaryDirectory() as tmp:
            run.log_model(deployable(out, tmp), input_example(dev, task.has_pair))


if __name__ == "__main__" and not skip_unless_enabled():
    run_stage(main)
