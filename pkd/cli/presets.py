"""`pkd-preset NAME`: overlay presets/NAME.yaml onto params.yaml, keeping its comments.

The result stays one plain params.yaml, so `dvc params diff` shows exactly the
keys a preset changes, and it is validated before it is written. The keys that
dvc.yaml needs spelled out but that follow from others (data.inputs, the
per-stage strategy lists, export.tasks) are rewritten with it; `pkd-preset --sync` rewrites
only them, after a hand edit of data.tasks, data.glue_dir or data.custom_tasks.
"""
from __future__ import annotations

import argparse
import io
import os
import stat
import tempfile
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from pkd.pipeline.params import (
    ConfigError,
    DataParams,
    export_tasks,
    parse_params,
    split_strategies,
    task_inputs,
)
from pkd.pipeline.stage import run_stage

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


def derived_keys(raw: dict) -> dict:
    """The values of the keys that follow from the others, as a changes mapping for `overlay`."""
    student = raw.get("student", {})
    data = {k: v for k, v in raw.get("data", {}).items() if k != "inputs"}
    try:
        inputs = task_inputs(DataParams.model_validate(data))
    except ValueError:
        inputs = None  # the validation of the whole file names the bad key
    export = raw.get("export", {})
    return {"data": {"inputs": inputs},
            "student": split_strategies(list(student.get("strategies", [])), student.get("init", "pretrained")),
            "export": {"tasks": export_tasks(export.get("enabled", False), list(raw.get("data", {}).get("tasks", [])))}}


def apply_preset(name: str | None, params_path: Path = Path("params.yaml"), presets_dir: Path = PRESETS_DIR,
                 glue_dir: str | None = None) -> str:
    """Overlay presets/<name>.yaml (None: no preset, only the derived keys) and write params.yaml."""
    changes = {}
    if name is not None:
        preset_path = presets_dir / f"{name}.yaml"
        if not preset_path.is_file():
            available = ", ".join(sorted(p.stem for p in presets_dir.glob("*.yaml"))) or "none"
            raise ConfigError(f"{preset_path}: no such preset; available: {available}")
        changes = YAML(typ="safe").load(preset_path.read_text())
    yaml = _yaml()
    params = yaml.load(params_path.read_text())
    if glue_dir is not None:
        changes.setdefault("data", {})["glue_dir"] = str(glue_dir)
    overlay(params, changes)
    text = _checked_text(yaml, params)
    _replace(params_path, text)
    return text


def _checked_text(yaml: YAML, params) -> str:
    """params.yaml's text with the derived keys rewritten, validated: nothing invalid is ever written."""
    # Plain Python values of the merged file, from which the derived keys follow.
    derived = derived_keys(YAML(typ="safe").load(_dump(yaml, params)))
    inputs = derived["data"].pop("inputs")
    if inputs is not None:
        inputs = CommentedMap(inputs)  # replaced whole, not merged: its keys are the tasks
        inputs.fa.set_flow_style()
        params["data"]["inputs"] = inputs
    overlay(params, derived)
    text = _dump(yaml, params)
    parse_params(YAML(typ="safe").load(text))
    return text


def _replace(path: Path, text: str) -> None:
    """Write `path` whole or not at all: DVC or a stage reading it meanwhile sees the old file or the new."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _quoted(value):
    """`value` with each string quoted that a YAML 1.1 reader (PyYAML) would not read back as that
    string (`no`, `on`, `yes` are booleans there); YAML 1.2 readers (DVC, pkd) read it as written."""
    import yaml

    if isinstance(value, list):
        return [_quoted(v) for v in value]
    if isinstance(value, str):
        tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))
        return SingleQuotedScalarString(value) if tag != "tag:yaml.org,2002:str" else value
    return value


def add_custom_task(name: str, spec: dict, params_path: Path = Path("params.yaml"), *, only: bool = True,
                    teacher: str | None = None) -> str:
    """Check a custom task's files by reading them as `prepare` will, then write the task into
    params.yaml (data.custom_tasks.<name>; data.tasks: only it, or appended) with the derived keys.
    `teacher`: an already fine-tuned classifier of this task, used as is. Returns a summary."""
    from pkd.data.custom import CustomTaskSpec, read_custom_task

    spec = {k: v for k, v in spec.items() if v is not None}
    splits, info = read_custom_task(name, CustomTaskSpec(**spec))
    yaml = _yaml()
    params = yaml.load(params_path.read_text())
    data = params["data"]
    if not isinstance(data.get("custom_tasks"), dict) or not data["custom_tasks"]:
        data["custom_tasks"] = CommentedMap()
    data["custom_tasks"][name] = CommentedMap({k: _quoted(v) for k, v in spec.items()})
    tasks = [name] if only else [t for t in data["tasks"] if t != name] + [name]
    overlay(params, {"data": {"tasks": tasks}})
    pooling = ""
    if teacher is not None:
        from pkd.models.loading import check_fine_tuned_teacher, checkpoint_pooling

        check_fine_tuned_teacher(teacher, info)
        # The classifier was trained with its pooling; its cache and students must use the same.
        overlay(params, {"teacher": {"checkpoint": teacher, "fine_tuned": True},
                         "pooling": checkpoint_pooling(teacher)})
        pooling = f"; the teacher's pooling: {params['pooling']}"
    _replace(params_path, _checked_text(yaml, params))
    sizes = ", ".join(f"{split} {len(rows)}" for split, rows in splits.items())
    kind = "regression" if info.is_regression else f"{info.num_labels} labels: {', '.join(info.label_names)}"
    return (f"task '{name}': {sizes} rows; {kind}; metrics {', '.join(info.metric_names)} "
            f"(main: {info.main_metric}){pooling}")


def _dump(yaml: YAML, params) -> str:
    buffer = io.StringIO()
    yaml.dump(params, buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="preset name: a file presets/<name>.yaml")
    parser.add_argument("--sync", action="store_true",
                        help="no preset: only rewrite the derived keys (data.inputs, the per-stage strategy lists)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--glue-dir", help="root of a classic GLUE download (sets data.glue_dir)")
    args = parser.parse_args(argv)
    if (args.name is None) != args.sync:
        parser.error("give a preset name, or --sync")

    def apply() -> None:
        apply_preset(args.name, args.params, glue_dir=args.glue_dir)
        done = f"applied preset '{args.name}' to" if args.name else "rewrote the derived keys of"
        print(f"{done} {args.params}; see `dvc params diff`")

    run_stage(apply)  # a PKDError: one line, exit 2


if __name__ == "__main__":
    main()
