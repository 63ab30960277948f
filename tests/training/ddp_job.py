"""`train_model` or `score_model` under torchrun:
`torchrun --nproc_per_node 2 tests/training/ddp_job.py train|score CHECKPOINT WORKDIR`.

Each rank writes what it did to WORKDIR/rank<N>.json: for `train`, what its Trainer ran (world
size, optimizer steps); for both, which outputs it wrote.
"""
import json
import os
import sys
from pathlib import Path

import transformers

import pkd.training.train as training
from pkd.data import get_task, load_task
from pkd.data.prepare import tokenize
from pkd.models.loading import build_teacher, load_tokenizer
from pkd.pipeline.params import TrainParams

REPORT: dict = {"wrote": []}


def record_runs() -> None:
    """Wrap Trainer.train and the writers train_model and score_model use, to see what each rank did."""
    train, atomic_dir, write_json = transformers.Trainer.train, training.atomic_dir, training.write_json

    def reporting_train(self, *args, **kwargs):
        out = train(self, *args, **kwargs)
        REPORT.update(world_size=self.args.world_size, parallel_mode=str(self.args.parallel_mode),
                      steps=out.global_step)
        return out

    def recording_atomic_dir(path):
        REPORT["wrote"].append(Path(path).name)
        return atomic_dir(path)

    def recording_write_json(path, data):
        REPORT["wrote"].append(Path(path).name)
        return write_json(path, data)

    transformers.Trainer.train = reporting_train
    training.atomic_dir, training.write_json = recording_atomic_dir, recording_write_json


def main() -> None:
    mode, checkpoint, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    record_runs()
    task = get_task("builtin_sentiment")
    tokenizer = load_tokenizer(checkpoint)
    splits = tokenize(load_task(task.name, "builtin", seed=0, builtin_train_size=64, builtin_dev_size=32),
                      tokenizer, task, 64)
    outputs = {"model_out": work / "model", "history_out": work / "history.json"}
    model = build_teacher(checkpoint, task, seed=0)
    if mode == "train":
        training.train_model(
            model, tokenizer, task=task, train=splits["train"], dev=splits["dev"],
            params=TrainParams(epochs=1, batch_size=16, learning_rate=1e-3, train_eval_samples=16),
            learning_rate=1e-3, seed=0, checkpoint_dir=work / "checkpoints", **outputs,
        )
    else:
        training.score_model(model, tokenizer, task=task, train=splits["train"], dev=splits["dev"],
                             train_eval_samples=16, seed=0, **outputs)
    (work / f"rank{os.environ['RANK']}.json").write_text(json.dumps(REPORT))


if __name__ == "__main__":
    main()
