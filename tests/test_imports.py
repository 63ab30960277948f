"""Imports point down: each package of pkd imports only the shared modules and the packages below it.

The layers, lowest first: the method, task data, models, the teacher cache, evaluation,
training, deployment, the pipeline's plumbing (params schema, stage runner, paths,
tracking), the report and the console commands; the stage scripts (stages/) sit on top.
So a user who wants only the loss, the layer maps, the pooling, the Trainer subclass, the
teacher cache or the model code imports none of pydantic, params.yaml's schema
(pkd.pipeline.params) or the data registry it validates against.
"""
import subprocess
import sys

import pytest
from conftest import ROOT
from import_graph import imported_modules, module_file

PKG = ROOT / "pkd"
# Imported from every layer; they import nothing of pkd but each other.
SHARED = ("pkd", "pkd.errors", "pkd.allowed_values", "pkd.io")
LAYERS = ("method", "data", "models", "cache", "evaluation", "training", "deploy", "pipeline", "report", "cli")
# Packages that load without the pipeline: what a library user imports.
LIGHT = ("method", "cache", "models")
PIPELINE_ONLY = ("pydantic", "pkd.pipeline", "pkd.data")


def module_name(path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def layer(name: str) -> str | None:
    """The package of a pkd module (`pkd.models.loading` -> models); None for a shared module."""
    parts = name.split(".")
    return None if name in SHARED else parts[1]


def test_every_package_has_a_layer_and_every_top_level_module_is_shared():
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    modules = {f"pkd.{p.stem}" for p in PKG.glob("*.py")} - {"pkd.__init__"}
    assert packages == set(LAYERS), "place a new package in LAYERS (and in README's layout)"
    assert modules <= set(SHARED), f"a top-level module is shared by every layer: {sorted(modules - set(SHARED))}"


def upward_imports() -> list[str]:
    """`importer -> imported` for every import (lazy ones included) that points sideways or up."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        importer = module_name(path)
        own = layer(importer)
        for name in sorted(imported_modules(path)):
            if module_file(name) is None or name in SHARED:
                continue
            theirs = layer(name)
            if own is None or (theirs != own and LAYERS.index(theirs) > LAYERS.index(own)):
                found.append(f"{importer} -> {name}")
    return found


def test_imports_point_down():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The method importing the pipeline, lazily inside a function, is caught."""
    fake = tmp_path / "pkd" / "method" / "sneaky.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from pkd.pipeline import params\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "pkd")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert upward_imports() == ["pkd.method.sneaky -> pkd.pipeline", "pkd.method.sneaky -> pkd.pipeline.params"]



def test_no_test_file_imports_another():
    """Test folders are on sys.path only once pytest has collected them: a helper that two test
    files share lives in tests/ itself (conftest.py, tiny_models.py, glue_files.py, import_graph.py)."""
    tests = ROOT / "tests"
    found = [f"{path.relative_to(tests)} imports {name}" for path in sorted(tests.rglob("*.py"))
             for name in sorted(imported_modules(path)) if name.split(".")[0].startswith("test_")]
    assert found == []

@pytest.mark.parametrize("package", LIGHT)
def test_method_cache_and_model_code_load_no_params_schema(package):
    modules = sorted(module_name(p) for p in (PKG / package).glob("*.py"))
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(sorted(m for m in sys.modules if m.startswith({PIPELINE_ONLY!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"pkd.{package} loads {out.strip()}"


def test_the_loss_as_a_library_user_writes_it():
    code = ("import sys; from pkd.method.losses import pkd_loss, LossConfig; "
            "assert 'pydantic' not in sys.modules and 'pkd.pipeline.params' not in sys.modules; "
            "print(LossConfig(alpha=0.5, temperature=2.0).distills)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
