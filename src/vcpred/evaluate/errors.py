"""The error raised by `vcpred evaluate` for run folders and tables a user can fix."""

from vcpred.errors import VcpredError


class EvaluationError(VcpredError):
    """A RUNS folder, run config or predictions table violates the contract (docs/evaluation.md)."""
