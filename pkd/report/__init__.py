"""Paper-style report (tables, figures, Markdown/HTML) built only from metrics files."""

from pkd.report.build import OUTPUTS, build_report

__all__ = ["OUTPUTS", "build_report"]
