"""Stage `prepare`: load a task from its source, tokenise, save as datasets on disk."""
from pkd import paths
from pkd.stage import load_checked_params, run_stage, stage_args
from pkd.data import get_task, load_task
from pkd.io import atomic_dir
from pkd.models import check_checkpoints, load_tokenizer
from pkd.prepare import content_fingerprints, subsample, tokenize
from pkd.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = get_task(args.task)
    data = params.data
    with stage_run("prepare", params={"data": data.model_dump(), "seed": params.seed}, tags={"task": task.name}) as run:
        splits = load_task(
            task.name,
            data.source,
            glue_dir=data.glue_dir,
            seed=params.seed,
            builtin_train_size=data.builtin_train_size,
            builtin_dev_size=data.builtin_dev_size,
        )
        splits = subsample(splits, data.max_train_samples, data.max_eval_samples)
        splits = tokenize(splits, load_tokenizer(params.teacher.checkpoint), task, data.max_seq_length)
        splits = content_fingerprints(splits)  # same bytes on disk from any checkout or venv
        with atomic_dir(paths.prepared(task.name)) as tmp:
            splits.save_to_disk(str(tmp))
        run.log_metrics({f"{name}_examples": len(split) for name, split in splits.items()})


if __name__ == "__main__":
    run_stage(main)
