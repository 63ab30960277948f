"""Stage `teacher_cache`: one no-grad teacher pass -> logits + the [CLS] states students read, by idx."""
from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorWithPadding

from pkd import paths
from pkd.stage import load_checked_params, run_stage, stage_args
from pkd.config import STRATEGY_LAYER_MAP
from pkd.data import get_task
from pkd.distributed import init_distributed, is_main_process
from pkd.layers import layer_union
from pkd.models import check_checkpoints, load_classifier
from pkd.precision import resolve_precision
from pkd.teacher_cache import build_cache, dataset_fingerprint, teacher_hash
from pkd.tracking import stage_run


def main() -> None:
    args = stage_args("task")
    params = load_checked_params(check_checkpoints)
    task = get_task(args.task)
    device = init_distributed()
    precision = resolve_precision(params.precision, device)
    teacher_dir = paths.teacher_model(task.name)
    splits = load_from_disk(str(paths.prepared(task.name)))
    model = load_classifier(teacher_dir).to(device)
    collator = DataCollatorWithPadding(AutoTokenizer.from_pretrained(str(teacher_dir)))
    # Only the layers some configured PKD student reads (the union of the layer maps).
    maps = [STRATEGY_LAYER_MAP[s] for s in params.student.strategies if STRATEGY_LAYER_MAP[s] and params.strategy(s).beta > 0]
    layers = layer_union(maps, model.config.num_hidden_layers, params.student.depths)
    names = ["train", *task.dev_splits]
    manifest = {
        "task": task.name,
        "teacher_dir": str(teacher_dir),
        "teacher_sha256": teacher_hash(teacher_dir),
        "data_fingerprint": {name: dataset_fingerprint(splits[name]) for name in names},
    }
    tracked = {"cache_dtype": params.teacher.cache_dtype, "stored_layers": layers, "precision": precision}
    # Every rank runs its shard of the teacher pass; rank 0 writes (and alone tracks, see stage_run).
    with stage_run("teacher_cache", params=tracked, tags={"task": task.name}) as run:
        rows = build_cache(
            model, {name: splits[name] for name in names}, collator, paths.teacher_cache(task.name), manifest,
            layers=layers, dtype=params.teacher.cache_dtype, batch_size=params.teacher.cache_batch_size,
            precision=precision,
        )
        if is_main_process():
            run.log_metrics({f"{name}_rows": n for name, n in rows.items()})


if __name__ == "__main__":
    run_stage(main)
