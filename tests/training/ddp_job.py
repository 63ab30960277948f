"""One epoch of `train_model` under torchrun: `torchrun --nproc_per_node 2 tests/training/ddp_job.py CHECKPOINT WORKDIR`.

Each rank writes what its Trainer ran (world size, optimizer steps) to WORKDIR/rank<N>.json.
"""
import json
import os
import sys
from pathlib import Path

import transformers

from pkd.data import get_task, load_task
from pkd.data.prepare import tokenize
from pkd.models.loading import build_teacher, load_tokenizer
from pkd.pipeline.params import TrainParams
from pkd.training.train import train_model


def record_runs(work: Path) -> None:
    """Wrap Trainer.train so that each rank reports the run it did."""
    train = transformers.Trainer.train

    def reporting_train(self, *args, **kwargs):
        out = train(self, *args, **kwargs)
        report = {"world_size": self.args.world_size, "parallel_mode": str(self.args.parallel_mode),
                  "steps": out.global_step}
        (work / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(report))
        return out

    transformers.Trainer.train = reporting_train


def main() -> None:
    checkpoint, work = sys.argv[1], Path(sys.argv[2])
    record_runs(work)
    task = get_task("builtin_sentiment")
    tokenizer = load_tokenizer(checkpoint)
    splits = tokenize(load_task(task.name, "builtin", seed=0, builtin_train_size=64, builtin_dev_size=32),
                      tokenizer, task, 64)
    train_model(
        build_teacher(checkpoint, task, seed=0), tokenizer, task=task, train=splits["train"], dev=splits["dev"],
        params=TrainParams(epochs=1, batch_size=16, learning_rate=1e-3, train_eval_samples=16),
        learning_rate=1e-3, seed=0, checkpoint_dir=work / "checkpoints", model_out=work / "model",
        history_out=work / "history.json",
    )


if __name__ == "__main__":
    main()
