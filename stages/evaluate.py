"""Stage `evaluate`: metrics of a task's teacher and every student on dev (and labelled test).

One stage per task rather than per model: loading a model and scoring dev
takes a second or two, while each stage's start-up costs several.
"""
import torch
from datasets import load_from_disk
from transformers import AutoTokenizer

from pkd.data import prepared_task
from pkd.evaluation.evaluate import evaluate_splits
from pkd.evaluation.schema import evaluation_record
from pkd.io import atomic_dir, write_json
from pkd.models.loading import check_checkpoints, checkpoint_depth, load_classifier
from pkd.models.precision import resolve_precision
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args
from pkd.pipeline.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = prepared_task(args.task, paths.prepared(args.task))
    splits = load_from_disk(str(paths.prepared(task.name)))
    teacher_depth = checkpoint_depth(params.teacher.checkpoint)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(params.precision, device)
    # The teacher's seed is the top-level one; each student has its own.
    models = [("teacher", None, teacher_depth, params.seed, paths.teacher_model(task.name))]
    for strategy in params.student.strategies:
        for depth in params.student.depths:
            for seed in params.student.seeds:
                name = paths.student_name(strategy, depth, seed)
                models.append((name, strategy, depth, seed, paths.student_model(task.name, strategy, depth, seed)))
    for *_, model_dir in models:  # all present before any work
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: model directory not found")
    for name, strategy, depth, seed, model_dir in models:
        tags = {"task": task.name, "strategy": strategy or "teacher", "depth": depth, "seed": seed}
        with stage_run("evaluate", params={"model_dir": str(model_dir)}, tags=tags) as run:
            model = load_classifier(model_dir).to(device)
            with atomic_dir(paths.predictions(task.name, name)) as tmp:
                results = evaluate_splits(model, AutoTokenizer.from_pretrained(str(model_dir)), splits, task, tmp, precision)
            record = evaluation_record(task=task, model=name, strategy=strategy, seed=seed,
                                       depth=model.config.num_hidden_layers, teacher_depth=teacher_depth,
                                       precision=precision, splits=results)
            write_json(paths.evaluation(task.name, name), record)
            run.log_metrics({f"{split}_{k}": v for split, m in results.items() for k, v in m.items()})
            run.log_artifact(paths.evaluation(task.name, name))


if __name__ == "__main__":
    run_stage(main)
