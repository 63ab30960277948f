"""Stage `prepare`: load a task from its source or its own files, tokenise, save as datasets on disk."""
from pkd.data import TASK_RECORD, load_params_task
from pkd.data.custom import task_info_to_dict
from pkd.data.prepare import content_fingerprints, subsample, tokenize
from pkd.io import atomic_dir, write_json
from pkd.models.loading import check_checkpoints, check_fine_tuned_teacher, load_tokenizer
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args
from pkd.pipeline.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    data = params.data
    with stage_run("prepare", params={"data": data.model_dump(), "seed": params.seed}, tags={"task": args.task}) as run:
        splits, task = load_params_task(args.task, data, params.seed)
        if params.teacher.fine_tuned:  # its labels must be the task's: refused before any work
            check_fine_tuned_teacher(params.teacher.checkpoint, task)
        splits = subsample(splits, data.max_train_samples, data.max_eval_samples)
        splits = tokenize(splits, load_tokenizer(params.teacher.checkpoint), task, data.max_seq_length)
        splits = content_fingerprints(splits)  # same bytes on disk from any checkout or venv
        with atomic_dir(paths.prepared(task.name)) as tmp:
            splits.save_to_disk(str(tmp))
            if task.source_kind == "custom":
                write_json(tmp / TASK_RECORD, task_info_to_dict(task))
        run.log_metrics({f"{name}_examples": len(split) for name, split in splits.items()})


if __name__ == "__main__":
    run_stage(main)
