"""The review pass of `vcpred annotate` (docs/annotate.md, "Review pass"): one small PNG per patient
with a saved ROI, the ROI slice with its box beside the box's neighbourhood enlarged, so that a reader
checks every box before `vcpred cohort check`.

A thumbnail reads the patient's image as opening it does (read_volume with the row's series, the voxel
budget, at most two reads at once: loading.READING), so it costs about one patient's opening; the page
asks for one only when its card is shown (a page of cards, images loaded lazily). The PNGs last made are
kept in memory, keyed by the patient's ROI cells and series, so a box saved anew gets a new thumbnail.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np

from vcpred.imaging.display import display_window
from vcpred.imaging.naming import slice_label
from vcpred.imaging.qc import ROI_COLOUR
from vcpred.serve.annotate_session import AnnotateSession
from vcpred.serve.errors import StudyNotFound
from vcpred.serve.limits import check_shape
from vcpred.serve.loading import READING
from vcpred.serve.roi import check_box
from vcpred.serve.settings import ServeSettings

THUMB_HEIGHT = 160  # pixels: the slice and the enlarged box, side by side
MAX_SIDE = 2 * THUMB_HEIGHT  # a very wide slice is squeezed, never a PNG wider than this per panel
GAP = 4
BOX_COLOUR = ROI_COLOUR  # the QC sheet's ROI green
ZOOM_MARGIN = 0.5  # the enlarged panel: the box and half its size on each side
KEPT = 64  # thumbnails kept in memory (each 10 to 80 KB: 77 KB for a 201 x 257 slice)


class NoRoi(StudyNotFound):
    """A thumbnail of a patient that has no saved ROI (404)."""


def _grey(image: np.ndarray):
    """The slice in the viewer's display window as an RGB PIL image."""
    from PIL import Image

    low, high = display_window(image)
    scaled = np.clip((np.nan_to_num(image.astype(np.float32), nan=low) - low) / (high - low), 0, 1)
    return Image.fromarray((scaled * 255).astype(np.uint8)).convert("RGB")


def _panel(image: np.ndarray, box, aspect: float):
    """image scaled to THUMB_HEIGHT rows (columns by the pixel aspect, at most MAX_SIDE) with box outlined."""
    from PIL import ImageDraw

    rows, cols = image.shape
    sy = THUMB_HEIGHT / rows
    width = min(MAX_SIDE, max(1, round(cols * sy * aspect)))
    sx = width / cols
    panel = _grey(image).resize((width, THUMB_HEIGHT))
    r0, c0, r1, c1 = box
    ImageDraw.Draw(panel).rectangle([c0 * sx, r0 * sy, c1 * sx - 1, r1 * sy - 1], outline=BOX_COLOUR, width=2)
    return panel


def thumbnail_image(volume, roi_slice: int, box: tuple[int, int, int, int]):
    """The PIL image: the whole ROI slice with its box, then the box's neighbourhood enlarged, the
    slice named as the scanner numbers it (its 0-based index beside)."""
    from PIL import Image, ImageDraw

    image = np.asarray(volume.array[roi_slice])
    aspect = float(volume.spacing[2]) / float(volume.spacing[1])  # a column's width in rows
    r0, c0, r1, c1 = box
    dr, dc = round((r1 - r0) * ZOOM_MARGIN), round((c1 - c0) * ZOOM_MARGIN)
    top, left = max(0, r0 - dr), max(0, c0 - dc)
    near = image[top:min(image.shape[0], r1 + dr), left:min(image.shape[1], c1 + dc)]
    whole, zoom = _panel(image, box, aspect), _panel(near, (r0 - top, c0 - left, r1 - top, c1 - left), aspect)
    sheet = Image.new("RGB", (whole.width + GAP + zoom.width, THUMB_HEIGHT), (32, 32, 32))
    sheet.paste(whole, (0, 0))
    sheet.paste(zoom, (whole.width + GAP, 0))
    numbers = volume.provenance.get("instance_numbers") or []  # as the viewer's study_state reads them
    number = numbers[roi_slice] if len(numbers) == volume.shape[0] else None
    caption = slice_label(roi_slice, number if isinstance(number, int) and not isinstance(number, bool) else None)
    ImageDraw.Draw(sheet).text((3, THUMB_HEIGHT - 13), caption, fill=(255, 255, 255))
    return sheet


class Thumbnails:
    """The review pass's PNGs for one session, the last KEPT made kept in memory."""

    def __init__(self, session: AnnotateSession, settings: ServeSettings):
        self.session, self.settings = session, settings
        self._kept: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, index: int) -> bytes:
        """The patient's thumbnail: NoRoi (404) without a saved ROI, the reader's or the box's error (422)
        when the image cannot be read or the box is outside it."""
        patient = self.session.patient(index)
        roi = patient.roi
        if roi is None:
            raise NoRoi(f"patient {patient.patient_id} has no saved ROI to show; open it in the editor and draw one")
        key = (index, tuple(patient.cells), patient.series)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        data = self._make(patient, roi)
        with self._lock:
            self._kept[key] = data
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return data

    def _make(self, patient, roi: dict) -> bytes:
        from vcpred.imaging import read_volume

        with READING:
            volume = read_volume(self.session.image_path(patient), series=patient.series)
        check_shape(volume.shape, self.settings, "the image", from_header=False)
        check_box(roi["slice"], tuple(roi["box"]), volume.shape)
        buffer = io.BytesIO()
        thumbnail_image(volume, roi["slice"], tuple(roi["box"])).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
