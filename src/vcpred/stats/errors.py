"""The error raised by vcpred.stats for input a user can get wrong."""

from vcpred.errors import VcpredError


class StatsError(VcpredError):
    """Invalid input to a statistic: wrong labels, NaNs, one class, mismatched lengths."""
