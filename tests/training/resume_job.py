"""A small training job for the crash test: `python tests/training/resume_job.py CHECKPOINT WORKDIR`."""
import sys
from pathlib import Path

from pkd.data import get_task, load_task
from pkd.data.prepare import tokenize
from pkd.models.loading import build_teacher, load_tokenizer
from pkd.pipeline.params import TrainParams
from pkd.training.train import train_model


def main() -> None:
    checkpoint, work = sys.argv[1], Path(sys.argv[2])
    task = get_task("builtin_sentiment")
    tokenizer = load_tokenizer(checkpoint)
    splits = tokenize(load_task(task.name, "builtin", seed=0, builtin_train_size=600, builtin_dev_size=64), tokenizer, task, 64)
    train_model(
        build_teacher(checkpoint, task, seed=0), tokenizer, task=task, train=splits["train"], dev=splits["dev"],
        params=TrainParams(epochs=5, batch_size=16, learning_rate=1e-3, train_eval_samples=64),
        learning_rate=1e-3, seed=0, checkpoint_dir=work / "checkpoints", model_out=work / "model",
        history_out=work / "history.json",
    )


if __name__ == "__main__":
    main()
