"""Stage `timing`: parameters, latency, throughput and speed-up of each depth vs the teacher."""
import torch
from datasets import load_from_disk
from transformers import DataCollatorWithPadding

from pkd.data import prepared_task
from pkd.evaluation.timing import time_depths
from pkd.io import write_json
from pkd.models.families import MODEL_INPUTS
from pkd.models.loading import check_checkpoints, load_tokenizer, resolve_checkpoint
from pkd.models.precision import resolve_precision
from pkd.pipeline import paths
from pkd.pipeline.stage import load_checked_params, run_stage
from pkd.pipeline.tracking import stage_run


def main() -> None:
    params = load_checked_params(check_checkpoints)
    timing = params.timing
    if timing.threads:
        torch.set_num_threads(timing.threads)
    task = prepared_task(params.data.tasks[0], paths.prepared(params.data.tasks[0]))  # real dev lengths of the first task
    dev = load_from_disk(str(paths.prepared(task.name)))[task.dev_splits[0]]
    dev = dev.select(range(min(timing.max_examples, len(dev))))
    features = [{k: row[k] for k in MODEL_INPUTS if k in row} for row in dev]
    collator = DataCollatorWithPadding(load_tokenizer(params.teacher.checkpoint))
    with stage_run("timing", params={"timing": timing.model_dump(), "depths": params.student.depths}, tags={"task": task.name}) as run:
        record = time_depths(
            resolve_checkpoint(params.teacher.checkpoint),
            params.student.depths,
            features,
            collator,
            task.num_labels,
            warmup=timing.warmup,
            repeats=timing.repeats,
            pooling=params.pooling,
            student_checkpoint_dir=resolve_checkpoint(params.student_checkpoint(), "student.init_checkpoint"),
            onnx=params.export.enabled,
            int8_recipe=params.export.int8_recipe,
            precision=resolve_precision(params.precision),
        )
        record["task"] = task.name
        write_json(paths.timing(), record)
        for model in record["models"]:
            prefix = model["model"] if model["runtime"] == "pytorch" else f"{model['model']}.{model['runtime']}"
            run.log_metrics({f"{prefix}.{k}": v for k, v in model["speedup"].items()})
        run.log_artifact(paths.timing())


if __name__ == "__main__":
    run_stage(main)
