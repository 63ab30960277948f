"""Stage `teacher`: fine-tune the N-layer teacher on one task."""
from datasets import load_from_disk

from pkd import paths
from pkd.run_key import config_hash
from pkd.stage import load_checked_params, run_stage, stage_args
from pkd.data import get_task
from pkd.models import build_teacher, check_checkpoints, load_tokenizer
from pkd.precision import resolve_precision
from pkd.tracking import stage_run
from pkd.training import train_model


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = get_task(args.task)
    splits = load_from_disk(str(paths.prepared(task.name)))
    teacher = params.teacher.for_task(task.name)
    precision = resolve_precision(params.precision)
    # What the teacher reads (dvc.yaml params); cache_* belong to the teacher_cache stage.
    settings = {"teacher": teacher.model_dump(exclude={"cache_dtype", "cache_batch_size"}), "seed": params.seed,
                "pooling": params.pooling, "precision": precision}
    run_key = config_hash(settings, paths.prepared(task.name))
    with stage_run("teacher", params=settings, tags={"task": task.name}) as run:
        train_model(
            build_teacher(teacher.checkpoint, task, seed=params.seed, pooling=params.pooling),
            load_tokenizer(teacher.checkpoint),
            task=task,
            train=splits["train"],
            dev=splits[task.dev_splits[0]],
            params=teacher,
            learning_rate=teacher.learning_rate,
            seed=params.seed,
            checkpoint_dir=paths.checkpoints(f"teacher-{task.name}-{run_key}"),
            model_out=paths.teacher_model(task.name),
            history_out=paths.history(task.name, "teacher"),
            tracker=run,  # per-epoch metrics reach MLflow while training runs
            precision=precision,
        )
        run.log_artifact(paths.history(task.name, "teacher"))


if __name__ == "__main__":
    run_stage(main)
