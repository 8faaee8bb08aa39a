"""Bring any stored 3-D orientation into vcpred's canonical sagittal display.

Canonical array axes [slice, row, col] point, in DICOM patient coordinates (LPS: +x left,
+y posterior, +z superior), along +L, -S and +P. In nibabel's RAS-based axis codes (the letter an
axis points *to*) that is ('L', 'I', 'P'). Only permutations and flips are applied, never
resampling; an oblique volume is assigned to the nearest world axes and its obliquity recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vcpred.errors import OrientationError

if TYPE_CHECKING:
    import SimpleITK as sitk

# World axis (LPS index) and sign each canonical axis must point along.
CANONICAL_WORLD_AXIS = (0, 2, 1)  # slice -> x (L/R), row -> z (S/I), col -> y (A/P)
CANONICAL_SIGN = (1, -1, 1)  # +L, -S (towards inferior), +P
CANONICAL_CODES = ("L", "I", "P")
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of LPS x, y, z
PLANE_OF_NORMAL = {0: "sagittal", 1: "coronal", 2: "axial"}


@dataclass
class Volume:
    """A 3-D image in the canonical sagittal display.

    array: float32 [S, R, C]; spacing: (slice_mm, row_mm, col_mm); origin: LPS position in mm of
    voxel [0, 0, 0]; direction: 3x3, column a is the LPS unit vector along array axis a (kept
    exactly, also when oblique, so resampling between sequences is physically right).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray
    provenance: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image of this volume (index order x, y, z = col, row, slice)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array, dtype=np.float32))
        image.SetSpacing([float(s) for s in self.spacing[::-1]])
        image.SetOrigin([float(v) for v in self.origin])
        image.SetDirection([float(v) for v in self.direction[:, ::-1].ravel()])
        return image

    def slab(self, first: int, last: int) -> "Volume":
        """Slices first..last (inclusive) as a Volume at the same world position."""
        origin = self.origin + first * self.spacing[0] * self.direction[:, 0]
        return Volume(self.array[first:last + 1], self.spacing, origin, self.direction.copy(),
                      dict(self.provenance))

    def with_array(self, array: np.ndarray) -> "Volume":
        return Volume(array.astype(np.float32, copy=False), self.spacing, self.origin.copy(),
                      self.direction.copy(), dict(self.provenance))


def axis_codes(direction: np.ndarray) -> tuple[str, ...]:
    """Letter each array axis points towards (nibabel style), from an LPS direction matrix."""
    codes = []
    for a in range(3):
        w = int(np.argmax(np.abs(direction[:, a])))
        codes.append(_LETTERS[w][int(direction[w, a] > 0)])
    return tuple(codes)


def plane_of(normal: np.ndarray) -> str:
    """'sagittal', 'coronal' or 'axial': the plane whose normal is closest to this vector."""
    return PLANE_OF_NORMAL[int(np.argmax(np.abs(normal)))]


def nearest_world_axes(direction: np.ndarray, source: str) -> list[int]:
    """LPS axis nearest to each array axis; OrientationError when two axes compete for one."""
    world = [int(np.argmax(np.abs(direction[:, a]))) for a in range(3)]
    if sorted(world) != [0, 1, 2]:
        raise OrientationError(
            f"{source}: cannot tell the orientation: two image axes are closest to the same patient "
            f"axis (direction cosines {np.round(direction, 3).T.tolist()}); the volume is too oblique "
            "(about 45 degrees). Export a sagittal series closer to the true sagittal plane.")
    return world


def obliquity_deg(direction: np.ndarray) -> float:
    """Largest angle (degrees) between an array axis and its nearest patient axis."""
    cosines = np.clip(np.abs(direction).max(axis=0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def to_canonical(array: np.ndarray, spacing: np.ndarray, origin: np.ndarray,
                 direction: np.ndarray, *, source: str) -> tuple[Volume, dict]:
    """Permute and flip a stored volume into the canonical display.

    array: [a0, a1, a2] as stored; spacing (mm) and direction columns (LPS unit vectors) per stored
    axis; origin: LPS mm of stored voxel [0, 0, 0]. Returns the canonical Volume and a record of
    what was done: `permutation` (stored axis feeding each canonical axis) and `flipped`
    (canonical axes reversed).
    """
    world = nearest_world_axes(direction, source)
    perm = [world.index(w) for w in CANONICAL_WORLD_AXIS]
    out = np.transpose(array, perm)
    new_dir = direction[:, perm].copy()
    new_spacing = spacing[perm]
    flipped = []
    origin = np.asarray(origin, dtype=float).copy()
    for c, (w, sign) in enumerate(zip(CANONICAL_WORLD_AXIS, CANONICAL_SIGN)):
        if np.sign(new_dir[w, c]) != sign:
            # Reversing an axis moves voxel 0 to the far end of that axis.
            origin = origin + (out.shape[c] - 1) * new_spacing[c] * new_dir[:, c]
            new_dir[:, c] = -new_dir[:, c]
            out = np.flip(out, axis=c)
            flipped.append(c)
    record = {"orientation_found": list(axis_codes(direction)), "permutation": perm,
              "flipped": flipped, "obliquity_deg": round(obliquity_deg(direction), 3)}
    volume = Volume(np.ascontiguousarray(out, dtype=np.float32),
                    (float(new_spacing[0]), float(new_spacing[1]), float(new_spacing[2])), origin, new_dir)
    return volume, record


def check_sagittal(normal: np.ndarray, source: object) -> None:
    """OrientationError naming the plane when the slice normal is not closest to left-right."""
    plane = plane_of(normal)
    if plane != "sagittal":
        article = "an" if plane == "axial" else "a"
        raise OrientationError(
            f"{source}: this is {article} {plane} series (slice normal {np.round(normal, 3).tolist()} "
            "in LPS), not a sagittal one; give the sagittal series of the spine", plane=plane)


def stored_index(canonical: tuple[int, int, int], provenance: dict) -> tuple[int, ...]:
    """The voxel index in the array as stored (e.g. a NIfTI file's (i, j, k), 0-based) of a canonical
    (slice, row, col) index, from the volume's provenance (`permutation`, `flipped`, `shape`): the
    inverse of to_canonical. docs/manifest.md shows it by hand."""
    shape, permutation, flipped = provenance["shape"], provenance["permutation"], provenance["flipped"]
    stored = [0, 0, 0]
    for axis, index in enumerate(canonical):
        stored[permutation[axis]] = shape[axis] - 1 - index if axis in flipped else index
    return tuple(int(v) for v in stored)


def geometry_record(volume: Volume) -> dict:
    """Spacing, shape and slice count of a canonical volume, for provenance."""
    return {"spacing_mm": [round(s, 6) for s in volume.spacing], "shape": list(volume.shape),
            "slice_count": volume.shape[0]}
