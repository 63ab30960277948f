"""Stage `distill` (and `finetune`): train one student (task x strategy x depth x seed)."""
from datasets import load_from_disk

from pkd.data import prepared_task
from pkd.models.loading import check_checkpoints
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args
from pkd.pipeline.tracking import stage_run
from pkd.training.distill import plan_student, train_student


def main() -> None:
    args = stage_args("task", "strategy", "depth", "seed")
    params = load_checked_params(check_checkpoints)
    task = prepared_task(args.task, paths.prepared(args.task))
    splits = load_from_disk(str(paths.prepared(task.name)))
    teacher_dir = paths.teacher_model(task.name)
    plan = plan_student(params, task, args.strategy, args.depth, args.seed, splits=splits,
                        prepared_dir=paths.prepared(task.name), teacher_dir=teacher_dir,
                        cache_dir=paths.teacher_cache(task.name))
    name = paths.student_name(args.strategy, args.depth, args.seed)
    with stage_run("distill", params=plan.settings, tags=plan.tags) as run:
        train_student(
            plan, params, splits, teacher_dir=teacher_dir,
            checkpoint_dir=paths.checkpoints(f"{task.name}-{name}-{plan.run_key}"),
            model_out=paths.student_model(task.name, args.strategy, args.depth, args.seed),
            history_out=paths.history(task.name, name),
            tracker=run,  # per-epoch metrics reach MLflow while training runs
        )
        run.log_artifact(paths.history(task.name, name))


if __name__ == "__main__":
    run_stage(main)
