"""Every stage lists, as DVC deps, each pkd module that its script imports (transitively).

A module missing from a stage's deps means an edit to it re-runs nothing, and
DVC reports "up to date" for results the code would now compute differently.
The closure is read from the source with `ast`, imports inside functions
included, so a lazy import counts as much as a top-level one.
"""
import re
from pathlib import Path

import pytest
import yaml
from import_graph import ROOT, imported_modules, module_file

# Modules that cannot change any output, so no stage needs to re-run when they change.
EXEMPT = {"pkd/pipeline/tracking.py"}  # MLflow tracking: copies of params/metrics, never an input to a result


def closure(script: Path) -> set[str]:
    """Repository-relative paths of every pkd file that running `script` can import."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            found = module_file(name)
            if found is not None and found not in seen:
                seen.add(found)
                # An exempt module's own imports (tracking -> the MLflow model wrapper) only
                # serve tracking, so they are not followed.
                if found.relative_to(ROOT).as_posix() not in EXEMPT:
                    todo.append(found)
    return {p.relative_to(ROOT).as_posix() for p in seen}


def stage_templates() -> dict[str, dict]:
    """Stage name -> its (unexpanded) definition; foreach stages keep their `do` body."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: body.get("do", body) for name, body in stages.items()}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


STAGES = stage_templates()


def script_of(stage: dict) -> Path:
    match = re.search(r"stages/\w+\.py", stage["cmd"])
    assert match, f"no stage script in {stage['cmd']!r}"
    return ROOT / match.group(0)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_imported_pkd_module(name):
    stage = STAGES[name]
    script = script_of(stage)
    deps = stage["deps"]
    assert script.relative_to(ROOT).as_posix() in deps
    missing = sorted(p for p in closure(script) - EXEMPT if not covered(p, deps))
    assert not missing, f"stage {name}: imported but not in deps: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_all_used(name):
    """The other direction: a pkd dep the stage never imports would re-run it for nothing; a folder
    is a dep only where the stage imports every module in it."""
    stage = STAGES[name]
    used = closure(script_of(stage))
    code_deps = [d for d in stage["deps"] if d == "pkd" or d.startswith("pkd/")]
    for dep in code_deps:
        assert (ROOT / dep).exists(), f"stage {name}: dep {dep} does not exist"
        assert any(covered(p, [dep]) for p in used), f"stage {name}: dep {dep} is not imported by the stage"
        if (ROOT / dep).is_dir():  # an edit to any module in it re-runs the stage
            unused = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / dep).rglob("*.py")
                            if p.relative_to(ROOT).as_posix() not in used)
            assert not unused, f"stage {name}: dep {dep} holds modules the stage never imports: {unused}"


def test_report_code_is_not_a_dep_of_training():
    for name in ("teacher", "teacher_cache", "distill"):
        assert not any(p.startswith("pkd/report") for p in closure(script_of(STAGES[name]))), name


def test_closure_follows_relative_and_function_level_imports(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkd.report\n"
        "def main():\n    from pkd.data import schema\n"
    )
    used = closure(script)
    assert not any(p.startswith("pkd/report") for p in used)  # annotation-only imports never run
    assert "pkd/data/schema.py" in used  # imported inside a function, as a submodule name
    assert "pkd/data/builtin.py" in used  # `from .builtin import ...` in pkd/data/__init__.py
    assert "pkd/__init__.py" in used  # every `import pkd.x` runs the package's __init__


def changed_stages(root: Path, env: dict) -> set[str]:
    import json

    from conftest import run_cmd

    status = json.loads(run_cmd(["dvc", "status", "--json"], root, env).strip().splitlines()[-1])
    return {name.split(":")[-1] for name in status}


@pytest.mark.slow
def test_what_each_change_reaches_in_the_dag(tmp_path):
    """Placeholder outputs recorded with `dvc commit` (nothing trained), then DVC's own view of
    what a change makes stale: a cache-only key reaches only the cache; a new cache or a new
    teacher reaches the students that read them, never the FT students."""
    from conftest import make_repo, run_cmd
    from dvc.repo import Repo

    task = "builtin_pair"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["tasks"] = [task]
    params["student"]["depths"] = [2]
    default_beta = params["strategies"]["pkd_skip"]["beta"]
    env = make_repo(tmp_path, params)
    with Repo(str(tmp_path)) as repo:
        outs = [Path(out.fs_path) for stage in repo.index.stages for out in stage.outs]
    for out in outs:
        target = out if out.suffix else out / "part"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(out))
    run_cmd(["dvc", "commit", "-f", "-q"], tmp_path, env)
    assert changed_stages(tmp_path, env) == set()

    def write(params):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    params["strategies"]["pkd_skip"]["beta"] = 500.0  # the paper's sweep axis: its students, not the cache
    write(params)
    # ... and the report, whose loss-terms table weighs each term with its strategy's alpha and beta.
    assert changed_stages(tmp_path, env) == {f"distill@{task}-pkd_skip-2-42", "report"}
    params["strategies"]["pkd_skip"]["beta"] = default_beta

    params["teacher"]["cache_dtype"] = "bfloat16"  # not the default
    write(params)
    assert changed_stages(tmp_path, env) == {f"teacher_cache@{task}"}  # not the teacher

    (tmp_path / "cache/teacher" / task / "part").write_text("float16 rows")
    readers = {f"distill@{task}-{s}-2-42" for s in ("kd", "pkd_skip", "pkd_last")}
    assert changed_stages(tmp_path, env) == {f"teacher_cache@{task}", *readers}  # not finetune@...-ft-2

    (tmp_path / "models/teacher" / task / "part").write_text("another teacher")
    assert changed_stages(tmp_path, env) == {f"teacher@{task}", f"teacher_cache@{task}", f"evaluate@{task}", *readers}
