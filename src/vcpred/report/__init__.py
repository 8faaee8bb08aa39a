"""The study-style HTML report of an evaluation (`vcpred report`, docs/report.md)."""

from vcpred.report.inputs import ReportError

__all__ = ["ReportError", "build_report"]


def build_report(*args, **kwargs):
    """See vcpred.report.build.build_report (imported lazily: it pulls in matplotlib and torch)."""
    from vcpred.report.build import build_report as build

    return build(*args, **kwargs)
