"""The stage runner: clean one-line errors, and no imports a stage does not use."""
import subprocess
import sys

import pytest

from conftest import ROOT
from pkd.cli import run_stage


def test_stale_cache_error_is_a_user_error(capsys):
    from pkd.teacher_cache import StaleCacheError

    def main():
        raise StaleCacheError("cache/teacher/x: made from another teacher")

    with pytest.raises(SystemExit) as exit_info:
        run_stage(main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: cache/teacher/x: made from another teacher\n"


def test_other_errors_keep_their_traceback():
    def main():
        raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):
        run_stage(main)


def test_report_stage_imports_no_model_or_cache_code():
    """A change to the model or cache code must not re-run the report, and vice versa (dvc.yaml deps)."""
    code = (
        "import runpy, sys; runpy.run_path('stages/report.py', run_name='not_main'); "
        "print(sorted(m for m in sys.modules if m in ('pkd.models', 'pkd.teacher_cache', 'pkd.training', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
