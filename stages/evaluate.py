"""Stage `evaluate`: metrics of the teacher or one student on dev (and labelled test)."""
import argparse

from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pkd import paths
from pkd.cli import load_checked_params, run_stage
from pkd.data import get_task
from pkd.evaluate import evaluate_splits
from pkd.io import atomic_dir, write_json
from pkd.models import checkpoint_depth
from pkd.tracking import stage_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", required=True, help="'teacher' or '<strategy>-<depth>'")
    args = parser.parse_args()
    params = load_checked_params()
    task = get_task(args.task)
    if args.model == "teacher":
        model_dir, role, strategy, depth = paths.teacher_model(task.name), "teacher", None, None
    else:
        strategy, depth = args.model.rsplit("-", 1)
        model_dir, role, depth = paths.student_model(task.name, strategy, int(depth)), "student", int(depth)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model directory not found")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    splits = load_from_disk(str(paths.prepared(task.name)))
    tags = {"task": task.name, "strategy": strategy or "teacher", "depth": depth or model.config.num_hidden_layers}
    with stage_run("evaluate", params={"model_dir": str(model_dir)}, tags=tags) as run:
        with atomic_dir(paths.predictions(task.name, args.model)) as tmp:
            results = evaluate_splits(model, AutoTokenizer.from_pretrained(str(model_dir)), splits, task, tmp)
        record = {
            "task": task.name,
            "model": args.model,
            "role": role,
            "strategy": strategy,
            "depth": model.config.num_hidden_layers,
            "teacher_depth": checkpoint_depth(params.teacher.checkpoint),
            "main_metric": task.main_metric,
            "metric_names": list(task.metric_names),
            "splits": results,
        }
        write_json(paths.evaluation(task.name, args.model), record)
        run.log_metrics({f"{split}_{k}": v for split, m in results.items() for k, v in m.items()})
        run.log_artifact(paths.evaluation(task.name, args.model))


if __name__ == "__main__":
    run_stage(main)
