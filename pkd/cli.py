"""What every stage script shares: argument parsing, validated params, clean errors.

A bad input ends the stage with one line on stderr naming the key, file or
line, exit status 2 and no traceback; outputs are written atomically, so none
is half-written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable

import datasets

from pkd.config import ConfigError, Params, check_depths, load_params
from pkd.data.errors import DataFormatError
from pkd.teacher_cache import StaleCacheError

PARAMS_FILE = os.environ.get("PKD_PARAMS", "params.yaml")
USER_ERRORS = (ConfigError, DataFormatError, StaleCacheError, FileNotFoundError)

# datasets would otherwise write cache files (sort/shuffle indices) into the
# prepared data directories, which are DVC outputs: DVC would see them modified.
datasets.disable_caching()


def load_checked_params() -> Params:
    """params.yaml, validated, including the rules that need the teacher's and student init's configs."""
    from pkd.models import (  # imports transformers: only once params parse
        check_student_init,
        checkpoint_depth,
    )

    params = load_params(PARAMS_FILE)
    check_depths(params, checkpoint_depth(params.teacher.checkpoint))
    check_student_init(params)
    return params


def config_hash(*parts) -> str:
    """Short hash of the settings a checkpoint belongs to, so a resume never mixes runs."""
    blob = json.dumps([p.model_dump() if hasattr(p, "model_dump") else p for p in parts], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stage_args(*names: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name in names:
        parser.add_argument(f"--{name}", required=True, type=int if name == "depth" else str)
    return parser.parse_args()


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
