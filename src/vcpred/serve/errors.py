"""User errors of the web viewer, each with the HTTP status it answers with.

Reader and prediction errors (any other VcpredError) answer 422: the request was well formed but
its content cannot be used (wrong plane, ROI outside the image, a clinical value missing...).
"""

from __future__ import annotations

from vcpred.errors import VcpredError


class ServeError(VcpredError):
    status = 400


class TooLarge(ServeError):
    status = 413


class UnsupportedUpload(ServeError):
    status = 415


class UnsafeArchive(ServeError):
    status = 400


class SlowUpload(ServeError):
    """A request body that stalled or took too long (a slow or malicious client)."""

    status = 408


class StorageFull(ServeError):
    """The server cannot write an upload's files (disk full, quota): its trouble, not the upload's."""

    status = 507


class StudyNotFound(ServeError):
    status = 404


class NotReady(ServeError):
    status = 409


def status_of(exc: VcpredError) -> int:
    return getattr(exc, "status", 422)


class Unusable(ServeError):
    """Well-formed input that cannot be used (no sagittal series, a refused series)."""

    status = 422


class RoiInputError(ServeError):
    status = 422


class RequestTypeError(ServeError):
    """A field of the right name with the wrong JSON type (a string for a boolean, ...)."""

    status = 422
