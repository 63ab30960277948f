"""Imports point down: the method loads without the pipeline's params schema.

A user who wants only the loss, the layer maps, the pooling, the Trainer subclass,
the teacher cache (its build and its format) or the precision policy imports none of pydantic, params.yaml's
schema (pkd.config) or the data registry it validates against.
"""
import subprocess
import sys

import pytest
from conftest import ROOT

METHOD_MODULES = ["pkd.losses", "pkd.layers", "pkd.pooling", "pkd.distill", "pkd.teacher_cache", "pkd.cache_format",
                  "pkd.precision"]
PIPELINE_ONLY = ("pydantic", "pkd.config", "pkd.data")


@pytest.mark.parametrize("module", METHOD_MODULES)
def test_method_module_imports_no_params_schema(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m in {PIPELINE_ONLY!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"{module} loads {out.strip()}"


def test_the_loss_as_a_library_user_writes_it():
    code = ("import sys; from pkd.losses import pkd_loss, LossConfig; "
            "assert 'pydantic' not in sys.modules and 'pkd.config' not in sys.modules; "
            "print(LossConfig(alpha=0.5, temperature=2.0).distills)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
