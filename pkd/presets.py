"""`pkd-preset NAME`: overlay presets/NAME.yaml onto params.yaml, keeping its comments.

The result stays one plain params.yaml, so `dvc params diff` shows exactly the
keys a preset changes, and it is validated before it is written. The keys
dvc.yaml's stage lists derive from (student.finetune_strategies and
distill_strategies, export.tasks) follow the keys the preset sets.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from pkd.config import ConfigError, export_tasks, parse_params, split_strategies
from pkd.stage import run_stage

PRESETS_DIR = Path("presets")


def overlay(base, changes) -> None:
    """Recursively set `changes` into `base` (a ruamel mapping), in place, keeping flow style."""
    for key, value in changes.items():
        old = base.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            overlay(old, value)
            continue
        if isinstance(value, list) and isinstance(old, CommentedSeq) and old.fa.flow_style():
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        base[key] = value


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    # Keep `null` spelled out, as in the hand-written file.
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def apply_preset(name: str, params_path: Path = Path("params.yaml"), presets_dir: Path = PRESETS_DIR,
                 glue_dir: str | None = None) -> str:
    preset_path = presets_dir / f"{name}.yaml"
    if not preset_path.is_file():
        available = ", ".join(sorted(p.stem for p in presets_dir.glob("*.yaml"))) or "none"
        raise ConfigError(f"{preset_path}: no such preset; available: {available}")
    yaml = _yaml()
    params = yaml.load(params_path.read_text())
    changes = YAML(typ="safe").load(preset_path.read_text())
    if glue_dir is not None:
        changes.setdefault("data", {})["glue_dir"] = str(glue_dir)
    student = changes.get("student", {})
    if "strategies" in student or "init" in student:  # keep dvc.yaml's per-stage lists in step
        merged = {**params.get("student", {}), **student}
        student.update(split_strategies(list(merged["strategies"]), merged.get("init", "pretrained")))
    if "tasks" in changes.get("data", {}) or "enabled" in changes.get("export", {}):  # dvc.yaml's export stages
        enabled = changes.get("export", {}).get("enabled", params.get("export", {}).get("enabled", False))
        tasks = changes.get("data", {}).get("tasks", params["data"]["tasks"])
        changes.setdefault("export", {})["tasks"] = export_tasks(enabled, tasks)
    overlay(params, changes)
    buffer = io.StringIO()
    yaml.dump(params, buffer)
    text = buffer.getvalue()
    parse_params(YAML(typ="safe").load(text))  # never write an invalid params.yaml
    params_path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="preset name: a file presets/<name>.yaml")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--glue-dir", help="root of a classic GLUE download (sets data.glue_dir)")
    args = parser.parse_args(argv)

    def apply() -> None:
        apply_preset(args.name, args.params, glue_dir=args.glue_dir)
        print(f"applied preset '{args.name}' to {args.params}; see `dvc params diff`")

    run_stage(apply)  # a PKDError: one line, exit 2


if __name__ == "__main__":
    main()
