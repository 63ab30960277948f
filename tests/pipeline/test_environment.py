"""requirements.lock against pyproject and the Makefile, and pkd.pipeline.environment's record of a run."""
import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

from pkd.pipeline import environment as env_mod

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / env_mod.LOCK_FILE


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def direct_in_lock() -> set[str]:
    """The packages uv's annotations say pyproject asks for ("# via pkd (pyproject.toml)")."""
    direct, name = set(), None
    for line in LOCK.read_text().splitlines():
        if line[:1].isalnum():
            name = _normal(Requirement(line).name)
        elif name and re.search(r"#\s+(via\s+)?pkd \(pyproject\.toml\)", line):
            direct.add(name)
    return direct


def test_every_pyproject_requirement_is_locked_within_its_range():
    locked = env_mod.locked_versions(LOCK)
    for req in pyproject_requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = _normal(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={locked[name]}, outside pyproject's '{req.specifier}': run `make lock`")


def test_the_lock_was_made_from_this_pyproject():
    """A dependency added to or removed from one of the two, not the other, fails here."""
    wanted = {_normal(r.name) for r in pyproject_requirements()}
    assert direct_in_lock() == wanted, "pyproject.toml and requirements.lock disagree: run `make lock`"


def test_the_lock_pins_the_torch_that_make_setup_installs():
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^TORCH_VERSION := (\S+)$", makefile, re.MULTILINE)[1]
    assert env_mod.locked_versions(LOCK)["torch"] == version


def test_make_setup_installs_compiled_bytecode():
    """pip compiles every installed module to bytecode; uv does not unless asked. Where Python may
    not write bytecode itself (PYTHONDONTWRITEBYTECODE, common in containers, or a read-only
    venv), each stage would then compile ~5,500 source files on import: +5 s a stage, +20% on
    the default run (docs/pipeline.md, "Reproducibility")."""
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "uv pip install" in line]
    assert installs and all("--compile-bytecode" in line for line in installs), installs


def test_lock_mismatches_name_each_package_that_differs(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\nfoo-bar==1.2.0\n    # via pkd (pyproject.toml)\n"
                    "baz==2.0 ; python_full_version < '3.0'\ntorch==2.13.0\n")
    installed = {"foo-bar": "1.2.0", "baz": "9.9", "torch": "2.13.0+cpu"}  # baz's pin is for Python 2
    assert env_mod.lock_mismatches(lock, installed) == {}
    installed.update({"foo-bar": "1.3.0", "torch": "2.14.0+cpu"})
    assert env_mod.lock_mismatches(lock, installed) == {"foo-bar": ("1.2.0", "1.3.0"), "torch": ("2.13.0", "2.14.0+cpu")}
    assert env_mod.lock_mismatches(lock, {"torch": "2.13.0"}) == {}  # a pin not installed (CUDA libraries)


def test_environment_names_versions_the_lock_and_an_id(tmp_path):
    import torch

    env = env_mod.environment(ROOT)
    assert env["torch"] == torch.__version__ and re.fullmatch(r"[0-9a-f]{12}", env["lock"])
    assert env["locked"] == "yes" or env["locked"].startswith("no (")
    assert env_mod.environment(tmp_path)["lock"] == "none"
    assert env_mod.environment(tmp_path)["id"] == env["id"]  # the same interpreter
    assert "torch " + torch.__version__ in env_mod.summary(env)


def test_the_tests_run_on_the_locked_versions():
    """`make setup` installs the lock exactly, so `make test` (and CI) test what the lock pins."""
    differ = env_mod.lock_mismatches(LOCK)
    assert not differ, f"installed packages differ from {LOCK.name} (locked, installed): {differ}; run `make setup`"
