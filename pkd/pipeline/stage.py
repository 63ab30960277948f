"""The stage runner: what every stage script shares (arguments, validated params, clean errors).

A bad input ends the stage with one line on stderr naming the key, file or
line, exit status 2 and no traceback; outputs are written atomically, so none
is half-written.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pkd.errors import PKDError

if TYPE_CHECKING:
    from pkd.pipeline.params import Params

# This module is imported by every stage, and DVC re-runs a stage when a module
# it imports changes (tests/test_dvc_deps.py): it imports only what all stages need.
# The params schema (pydantic) is loaded on the first call that reads params, so that
# the export and register stages parse their arguments and skip, when export is off,
# at a bare Python start-up.
PARAMS_FILE = os.environ.get("PKD_PARAMS", "params.yaml")
# What a user can get wrong: the pipeline's own errors, and a missing input file.
USER_ERRORS = (PKDError, FileNotFoundError)


def load_checked_params(check: Callable[[Params], None] | None = None) -> Params:
    """params.yaml, validated; `check` (pkd.models.loading.check_checkpoints) adds the rules that
    need the teacher's and the student init's configs. A stage that builds no model passes none."""
    from pkd.pipeline.params import load_params

    params = load_params(PARAMS_FILE)
    if check is not None:
        check(params)
    return params


def stage_args(*names: str) -> argparse.Namespace:
    """The stage's coordinates in dvc.yaml's matrix from its command line: `--task`, and
    `--strategy`, `--depth`, `--seed` for a student (depth and seed are ints)."""
    parser = argparse.ArgumentParser()
    for name in names:
        parser.add_argument(f"--{name}", required=True, type=int if name in ("depth", "seed") else str)
    return parser.parse_args()


def run_stage(main: Callable[[], None]) -> None:
    if "datasets" in sys.modules:
        # datasets would otherwise write cache files (sort/shuffle indices) into the
        # prepared data directories, which are DVC outputs: DVC would see them modified.
        sys.modules["datasets"].disable_caching()
    try:
        main()
    except Exception as err:
        if not isinstance(err, USER_ERRORS):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
