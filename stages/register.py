"""Stage `register`: a task's best exported student becomes MLflow registered model `pkd-<task>`.

Best: highest dev main metric of the int8 ONNX model (what ships); ties go to
the faster one (int8 batch-1 latency from timing.json, else fewer layers).
"""
import os
import sys
import tempfile

from pkd.io import read_json, write_json
from pkd.pipeline import paths
from pkd.pipeline.stage import PARAMS_FILE, load_checked_params, run_stage, stage_args


def export_switches() -> dict:
    """params.yaml's `export` section; a malformed switch ends the stage (one line, exit 2).

    With export on, this stage runs once per task even when export.register_best is
    off; reading two booleans with plain YAML keeps such a skipped stage at a Python
    start-up (pkd.pipeline.params would load pydantic and the task and strategy
    registries, and validate the whole file). Registering runs validate everything.
    """
    from ruamel.yaml import YAML

    if not os.path.isfile(PARAMS_FILE):
        print(f"error: {PARAMS_FILE}: parameter file not found", file=sys.stderr)
        sys.exit(2)
    with open(PARAMS_FILE) as fh:
        section = (YAML(typ="safe").load(fh) or {}).get("export") or {}  # YAML 1.2, as pkd.pipeline.params reads it
    for key in ("enabled", "register_best"):
        if not isinstance(section.get(key, False), bool):
            print(f"error: {PARAMS_FILE}: export.{key}: Input should be a valid boolean (got {section[key]!r})",
                  file=sys.stderr)
            sys.exit(2)
    return section


def skip_unless_enabled() -> bool:
    """When export or registration is off, record that without importing torch."""
    task = stage_args("task").task
    switches = export_switches()
    if switches.get("enabled", False) and switches.get("register_best", True):
        return False
    write_json(paths.deployment(task), {"task": task, "enabled": False})
    return True


def main() -> None:
    from datasets import load_from_disk

    from pkd.data import prepared_task
    from pkd.deploy.export import best_student, deployable, input_example, registered_name
    from pkd.pipeline.tracking import stage_run

    args = stage_args("task")
    params = load_checked_params()
    task = args.task
    info = prepared_task(task, paths.prepared(task))
    candidates = []
    for strategy in params.student.strategies:
        for depth in params.student.depths:
            for seed in params.student.seeds:  # every seed's student is a candidate to ship
                name = paths.student_name(strategy, depth, seed)
                record = read_json(paths.export_metrics(task, name))
                candidates.append({"model": name, "strategy": strategy, "depth": depth, "seed": seed,
                                   "score": record["onnx_int8"][info.main_metric]})
    latency = {}
    if paths.timing().is_file():
        for row in read_json(paths.timing())["models"]:
            if row.get("runtime") == "onnx_int8" and row.get("latency_b1_dev_ms"):
                latency[row["depth"]] = row["latency_b1_dev_ms"]["median"]
    best = best_student(candidates, latency)
    name = registered_name(task)
    decision = {"task": task, "registered_model": name, "variant": "onnx_int8", **best,
                "main_metric": info.main_metric, "candidates": candidates}
    tags = {"task": task, "strategy": best["strategy"], "depth": best["depth"], "seed": best["seed"]}
    with stage_run("register", params={"candidates": len(candidates)}, tags=tags) as run:
        uri = run.find_model({"stage": "export", **tags})
        if uri is None:  # export was restored from DVC's cache into a fresh MLflow store
            export = paths.onnx_model(task, best["strategy"], best["depth"], best["seed"])
            dev = load_from_disk(str(paths.prepared(task)))[info.dev_splits[0]]
            with tempfile.TemporaryDirectory() as tmp:
                uri = run.log_model(deployable(export, tmp), input_example(dev, info.has_pair))
        if uri is not None:
            run.register_model(uri, name, tags={f"pkd.{k}": v for k, v in best.items()})
        run.log_metrics({"score": best["score"]})
    write_json(paths.deployment(task), decision)


if __name__ == "__main__" and not skip_unless_enabled():
    run_stage(main)
