"""The pipeline's error family: one base class for every input a user can get wrong.

A stage, `pkd-preset`, `pkd-sweep-table` and `pkd predict` turn any PKDError into
one line on stderr and exit status 2 (pkd.pipeline.stage.run_stage); anything else is a bug
and keeps its traceback. Subclasses that used to be ValueError/RuntimeError still
are, so callers that catch those keep working.
"""
from __future__ import annotations


class PKDError(Exception):
    """A user-facing failure; the message names the key, file or line at fault."""


class ConfigError(PKDError, ValueError):
    """A parameter is invalid; the message names the key and the allowed values."""


class DataFormatError(PKDError, ValueError):
    """A data file does not have the layout we expect.

    The message always starts with ``<path>:<1-based line>:`` so the bad row
    can be found with an editor.
    """

    def __init__(self, path, line: int, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}")


class StaleCacheError(PKDError, RuntimeError):
    """The cache does not belong to this teacher, data or pooling, or lacks a layer a student needs."""


class ExportCheckError(PKDError, RuntimeError):
    """ONNX Runtime's predictions differ from PyTorch's on more dev examples than allowed."""


class StudyError(PKDError, ValueError):
    """The experiments cannot make the table; the message says which and why."""


class TrackingError(PKDError, RuntimeError):
    """A tracking failure while ``PKD_TRACKING_STRICT=1``."""


class MetricsError(PKDError, ValueError):
    """A metrics file is missing, unreadable or not in its schema; the message names the file."""
