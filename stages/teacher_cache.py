"""Stage `teacher_cache`: one no-grad teacher pass -> logits + [CLS] of every layer, by idx."""
from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorWithPadding

from pkd import paths
from pkd.cli import load_checked_params, run_stage, stage_args
from pkd.data import get_task
from pkd.distributed import init_distributed, is_main_process
from pkd.models import check_checkpoints, load_classifier, model_pooling
from pkd.teacher_cache import dataset_fingerprint, teacher_hash, teacher_outputs, write_cache
from pkd.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = get_task(args.task)
    device = init_distributed()
    teacher_dir = paths.teacher_model(task.name)
    splits = load_from_disk(str(paths.prepared(task.name)))
    model = load_classifier(teacher_dir).to(device)
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(teacher_dir)))
    names = ["train", *task.dev_splits]
    outputs = {name: teacher_outputs(model, splits[name], collator, params.teacher.cache_batch_size) for name in names}
    if not is_main_process():
        return
    manifest = {
        "task": task.name,
        "teacher_dir": str(teacher_dir),
        "teacher_sha256": teacher_hash(teacher_dir),
        "data_fingerprint": {name: dataset_fingerprint(splits[name]) for name in names},
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "num_labels": model.config.num_labels,
        "pooling": model_pooling(model),
    }
    with stage_run("teacher_cache", params={"cache_dtype": params.teacher.cache_dtype}, tags={"task": task.name}) as run:
        write_cache(paths.teacher_cache(task.name), outputs, manifest, params.teacher.cache_dtype)
        run.log_metrics({f"{name}_rows": len(out["idx"]) for name, out in outputs.items()})


if __name__ == "__main__":
    run_stage(main)
