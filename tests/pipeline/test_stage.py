"""The stage runner: clean one-line errors, and no imports a stage does not use."""
import subprocess
import sys

import pytest
from conftest import ROOT

from pkd.pipeline.stage import run_stage


def test_stale_cache_error_is_a_user_error(capsys):
    from pkd.errors import StaleCacheError

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
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('pkd.models', 'pkd.cache', 'pkd.training'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("bad_call", [
    lambda: __import__("pkd.data", fromlist=["get_task"]).get_task("nope"),
    lambda: __import__("pkd.method.layer_maps", fromlist=["layer_map"]).layer_map("sideways", 12, 6),
])
def test_unknown_names_end_in_one_line_not_a_traceback(bad_call, capsys):
    """An unknown task or layer map is a user error (PKDError): exit 2 and one line naming it."""
    with pytest.raises(SystemExit) as exit_info:
        run_stage(bad_call)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown") and err.count("\n") == 1
