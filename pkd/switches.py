"""params.yaml's `export` switches, read without pkd.config.

With export on, the register stage runs once per task even when
export.register_best is off; reading two booleans with plain YAML keeps such a
skipped stage at a Python start-up (pkd.config would load pydantic and the task
and strategy registries, and validate the whole file). Registering runs validate everything.
"""
from __future__ import annotations

import os
import sys


def export_switches() -> dict:
    """params.yaml's `export` section; a malformed switch ends the stage (one line, exit 2)."""
    from ruamel.yaml import YAML

    path = os.environ.get("PKD_PARAMS", "params.yaml")
    if not os.path.isfile(path):
        print(f"error: {path}: parameter file not found", file=sys.stderr)
        sys.exit(2)
    with open(path) as fh:
        section = (YAML(typ="safe").load(fh) or {}).get("export") or {}  # YAML 1.2, as pkd.config reads it
    for key in ("enabled", "register_best"):
        if not isinstance(section.get(key, False), bool):
            print(f"error: {path}: export.{key}: Input should be a valid boolean (got {section[key]!r})", file=sys.stderr)
            sys.exit(2)
    return section
