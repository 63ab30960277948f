"""Stage `teacher`: fine-tune the N-layer teacher on one task, or take one already fine-tuned
(teacher.fine_tuned), scored and saved the same way."""
from datasets import load_from_disk

from pkd.data import prepared_task
from pkd.models.loading import (
    build_teacher,
    check_checkpoints,
    load_fine_tuned_teacher,
    load_tokenizer,
)
from pkd.models.precision import resolve_precision
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args
from pkd.pipeline.tracking import stage_run
from pkd.training.resume_key import config_hash
from pkd.training.train import score_model, train_model


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = prepared_task(args.task, paths.prepared(args.task))
    splits = load_from_disk(str(paths.prepared(task.name)))
    teacher = params.teacher.for_task(task.name)
    precision = resolve_precision(params.precision)
    # What the teacher reads (dvc.yaml params); cache_* belong to the teacher_cache stage.
    settings = {"teacher": teacher.model_dump(exclude={"cache_dtype", "cache_batch_size"}), "seed": params.seed,
                "pooling": params.pooling, "precision": precision}
    run_key = config_hash(settings, paths.prepared(task.name))
    with stage_run("teacher", params=settings, tags={"task": task.name}) as run:
        outputs = {"model_out": paths.teacher_model(task.name), "history_out": paths.history(task.name, "teacher")}
        tokenizer = load_tokenizer(teacher.checkpoint)
        if teacher.fine_tuned:
            history = score_model(
                load_fine_tuned_teacher(teacher.checkpoint, task), tokenizer, task=task,
                train=splits["train"], dev=splits[task.dev_splits[0]],
                train_eval_samples=teacher.train_eval_samples, seed=params.seed, precision=precision, **outputs,
            )
            run.log_history(history)
        else:
            train_model(
                build_teacher(teacher.checkpoint, task, seed=params.seed, pooling=params.pooling),
                tokenizer,
                task=task,
                train=splits["train"],
                dev=splits[task.dev_splits[0]],
                params=teacher,
                learning_rate=teacher.learning_rate,
                seed=params.seed,
                checkpoint_dir=paths.checkpoints(f"teacher-{task.name}-{run_key}"),
                tracker=run,  # per-epoch metrics reach MLflow while training runs
                precision=precision,
                **outputs,
            )
        run.log_artifact(paths.history(task.name, "teacher"))


if __name__ == "__main__":
    run_stage(main)
