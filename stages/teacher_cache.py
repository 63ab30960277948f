"""Stage `teacher_cache`: one no-grad teacher pass -> logits + the layer states students read, by idx."""
from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorWithPadding

from pkd.cache.build import build_teacher_cache
from pkd.cache.distributed import init_distributed, is_main_process
from pkd.data import prepared_task
from pkd.models.loading import check_checkpoints, load_classifier
from pkd.models.precision import resolve_precision
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage, stage_args
from pkd.pipeline.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = prepared_task(args.task, paths.prepared(args.task))
    device = init_distributed()
    precision = resolve_precision(params.precision, device)
    teacher_dir = paths.teacher_model(task.name)
    model = load_classifier(teacher_dir).to(device)
    # The layers the configured patient strategies pair, whatever their beta (Params.patient_layers).
    layers = params.patient_layers(model.config.num_hidden_layers)
    tracked = {"cache_dtype": params.teacher.cache_dtype, "stored_layers": layers, "precision": precision}
    # Every rank runs its shard of the teacher pass; rank 0 writes (and alone tracks, see stage_run).
    with stage_run("teacher_cache", params=tracked, tags={"task": task.name}) as run:
        rows = build_teacher_cache(
            model, task, load_from_disk(str(paths.prepared(task.name))),
            DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(teacher_dir))), paths.teacher_cache(task.name),
            teacher_dir=teacher_dir, layers=layers, dtype=params.teacher.cache_dtype,
            batch_size=params.teacher.cache_batch_size, precision=precision,
        )
        if is_main_process():
            run.log_metrics({f"{name}_rows": n for name, n in rows.items()})


if __name__ == "__main__":
    run_stage(main)
