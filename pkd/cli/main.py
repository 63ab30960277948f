"""The `pkd` command. Subcommands:

    pkd predict --model DIR|FILE.onnx --input FILE|- --output FILE|-
    pkd repro --jobs N      `dvc repro` with up to N independent stages at a time
    pkd task NAME --train F --dev F --text COL --label COL ...
                            check your own files and write them into params.yaml as a task

Bad input (missing model, wrong fields on a line, empty input) ends with one
line on stderr and exit status 2, as the pipeline's stages do.
"""
from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pkd", description="Patient Knowledge Distillation tools")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser(
        "predict", help="label sentences with a saved or exported model",
        description="Reads one sentence, or a tab-separated sentence pair, per line; writes a TSV of "
        "the predicted label and the probability of each label, in input order.",
    )
    predict.add_argument("--model", required=True, help="model directory saved by the pipeline, "
                         "an export directory (models/onnx/...), or a .onnx file inside one")
    predict.add_argument("--input", required=True, help="input file, or - for stdin")
    predict.add_argument("--output", default="-", help="output TSV, or - for stdout (default)")
    predict.add_argument("--task", default=None, help="task name, for models saved without one")
    predict.add_argument("--batch-size", type=int, default=32)
    repro = sub.add_parser(
        "repro", help="dvc repro, running up to --jobs independent stages at a time",
        description="Brings the pipeline up to date like `dvc repro`, running independent stages "
        "(students, evaluations) in parallel, each as `dvc repro -s` with a one-line start/finish "
        "report and its output in runs/logs/<stage>.log.",
    )
    repro.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                       help="stages at a time (default: the number of cores); each gets cores/jobs "
                       "threads unless OMP_NUM_THREADS is set")
    task = sub.add_parser(
        "task", help="check your own data files and add them to params.yaml as a task",
        description="Reads the files as the prepare stage will (CSV, TSV, JSON Lines or Parquet, by "
        "suffix; or a `datasets` dataset with --dataset), reports rows and labels, and writes "
        "data.custom_tasks.NAME, data.tasks and data.inputs into params.yaml.",
    )
    task.add_argument("name", help="a name for the task (letters, digits, _)")
    task.add_argument("--train", required=True, help="train file (or split name with --dataset)")
    task.add_argument("--dev", required=True, help="dev file (or split name with --dataset)")
    task.add_argument("--test", help="test file, labels optional (or split name with --dataset)")
    task.add_argument("--dataset", help="a hub dataset id, or a directory written by save_to_disk / of Parquet files")
    task.add_argument("--config", help="the dataset's config name")
    task.add_argument("--text", required=True, help="column of the text")
    task.add_argument("--text-pair", help="column of the second text, for sentence-pair tasks")
    task.add_argument("--label", required=True, help="column of the label")
    task.add_argument("--labels", help="the class order, comma-separated (default: sorted labels of train)")
    task.add_argument("--regression", action="store_true", help="the label is a number")
    task.add_argument("--main-metric", help="metric the report leads with")
    task.add_argument("--fine-tuned-teacher", help="a classifier already fine-tuned on this task, used as is")
    task.add_argument("--add", action="store_true", help="keep the other tasks of data.tasks")
    task.add_argument("--params", default="params.yaml")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from pkd.pipeline.stage import run_stage  # after argument parsing: --help stays fast

    if args.command == "predict":
        from pkd.deploy.predict import predict_file

        def run() -> None:
            n = predict_file(args.model, args.input, args.output, args.task, args.batch_size)
            if args.output != "-":
                print(f"{n} predictions -> {args.output}", file=sys.stderr)

        run_stage(run)
    elif args.command == "task":
        from pathlib import Path

        from pkd.cli.presets import add_custom_task

        spec = {"train": args.train, "dev": args.dev, "test": args.test, "dataset": args.dataset,
                "config": args.config, "text": args.text, "text_pair": args.text_pair, "label": args.label,
                "labels": [label.strip() for label in args.labels.split(",")] if args.labels else None,
                "regression": args.regression or None, "main_metric": args.main_metric}

        def run() -> None:
            summary = add_custom_task(args.name, spec, Path(args.params), only=not args.add,
                                      teacher=args.fine_tuned_teacher)
            print(f"{summary}\nwrote {args.params}; see `dvc params diff`, then `dvc repro`")

        run_stage(run)
    elif args.command == "repro":
        from pkd.pipeline.parallel_repro import main as repro

        run_stage(lambda: repro(args.jobs))


if __name__ == "__main__":
    main()
