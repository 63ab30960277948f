"""The `pkd` command. Subcommands:

    pkd predict --model DIR|FILE.onnx --input FILE|- --output FILE|-
    pkd repro --jobs N      `dvc repro` with up to N independent stages at a time

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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from pkd.stage import run_stage  # after argument parsing: --help stays fast

    if args.command == "predict":
        from pkd.deploy.predict import predict_file

        def run() -> None:
            n = predict_file(args.model, args.input, args.output, args.task, args.batch_size)
            if args.output != "-":
                print(f"{n} predictions -> {args.output}", file=sys.stderr)

        run_stage(run)
    elif args.command == "repro":
        from pkd.parallel_repro import main as repro

        run_stage(lambda: repro(args.jobs))


if __name__ == "__main__":
    main()
