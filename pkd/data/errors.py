"""Errors raised by the data readers."""


class DataFormatError(ValueError):
    """A data file does not have the layout we expect.

    The message always starts with ``<path>:<1-based line>:`` so the bad row
    can be found with an editor.
    """

    def __init__(self, path, line: int, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}")
