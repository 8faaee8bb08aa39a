"""Errors a user can cause. The CLI prints their message as one line and exits 2.

Any other exception escaping the CLI is a bug in vcpred.
"""


class VcpredError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ManifestError(VcpredError):
    """The cohort manifest is unreadable or violates the schema (docs/manifest.md)."""


class SplitError(VcpredError):
    """Splits cannot be made from, or do not match, a cohort."""


class ImageReadError(VcpredError):
    """An image series or file cannot be read, or has inconsistent geometry."""


class OrientationError(ImageReadError):
    """An image is not in the sagittal plane, or its orientation cannot be determined.

    plane: the plane it is in ("axial", "coronal") when that is known, else None."""

    def __init__(self, message: str, plane: str | None = None):
        super().__init__(message)
        self.plane = plane


class RoiError(VcpredError):
    """A region of interest lies outside its image or is malformed."""


class ConfigError(VcpredError):
    """A configuration file or command-line value is invalid."""


class WeightsError(VcpredError):
    """Pre-trained weights are missing, corrupt or do not match a backbone."""


class RunError(VcpredError):
    """A run dir's config.yaml or predictions.csv violates the run-folder contract (vcpred.runs)."""
