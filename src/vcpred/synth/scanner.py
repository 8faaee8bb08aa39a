"""Turn base tissue signal into stored scanner pixels: texture, blur, bias field, contrast, noise.

Per patient: a tissue texture (smooth random field, strongest in marrow and bowel). Per series:
signal s (fat = 1) x texture -> in-plane Gaussian blur (sigma 0.6 px, partial volume) -> contrast
gamma of the site -> multiplicative bias field exp(low-order polynomial, posterior coil brighter)
-> times the site's dynamic range -> Rician noise (magnitude of signal + complex Gaussian noise,
SD = site.noise x range) -> stored = (value - RescaleIntercept) / RescaleSlope rounded to uint16.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vcpred.synth.sites import Site
from vcpred.synth.tissues import (ABDOMEN, EDEMA, FAT, INTERSPINOUS, LIVER, MARROW, MUSCLE, NUCLEUS,
                                  TISSUES)

_TEXTURE = np.zeros(256, dtype=np.float32)
for _tissue, _amp in ((MARROW, 0.12), (EDEMA, 0.12), (ABDOMEN, 0.2), (MUSCLE, 0.06), (FAT, 0.04),
                      (NUCLEUS, 0.05), (INTERSPINOUS, 0.3), (LIVER, 0.05)):
    _TEXTURE[_tissue.id] = _amp
assert len({t.id for t in TISSUES}) == len(TISSUES)


def _upsample(coarse: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation of `coarse` along `axis` onto n_out points spanning the same extent."""
    n_in = coarse.shape[axis]
    position = np.linspace(0, n_in - 1, n_out, dtype=np.float32)
    lower = np.minimum(position.astype(np.intp), n_in - 2)
    shape = [-1 if a == axis else 1 for a in range(coarse.ndim)]
    weight = (position - lower).astype(np.float32).reshape(shape)
    a = np.take(coarse, lower, axis=axis)
    b = np.take(coarse, lower + 1, axis=axis)
    return a + weight * (b - a)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], cell: int = 5) -> np.ndarray:
    """Zero-mean random field (SD about 0.7), smooth over about `cell` pixels in-plane: [k, r, c].

    Bilinear upsampling of coarse white noise (much faster than scipy.ndimage.zoom, no BLAS).
    """
    k, r, c = shape
    coarse = rng.standard_normal((k, r // cell + 2, c // cell + 2)).astype(np.float32)
    return _upsample(_upsample(coarse, r, 1), c, 2)


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """exp(low-order polynomial) over the volume, coil behind the patient: [k, r, c], mean ~1."""
    k, r, c = shape
    x = np.linspace(-1, 1, k, dtype=np.float32)[:, None, None] if k > 1 else np.zeros((1, 1, 1), np.float32)
    y = np.linspace(-1, 1, r, dtype=np.float32)[None, :, None]
    z = np.linspace(-1, 1, c, dtype=np.float32)[None, None, :]
    a = rng.normal(0.0, strength, size=6).astype(np.float32)
    coil = np.float32(0.25 + 2 * strength)           # receive coil in the table: posterior brighter
    poly_2d = a[0] * y + a[1] * z + a[2] * y * y + a[3] * z * z + a[4] * y * z + coil * z
    return np.exp(poly_2d + a[5] * 0.5 * x)


def tissue_texture(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative texture [k, r, c] around 1, strongest in marrow and bowel.

    Anatomical, so one field serves every sequence of a patient.
    """
    texture = _TEXTURE[label]
    texture *= smooth_noise(rng, label.shape)
    texture += 1.0
    return texture


def acquire(signal: np.ndarray, texture: np.ndarray, site: Site, sequence: str,
            rng: np.random.Generator) -> np.ndarray:
    """Stored uint16 pixels [k, r, c] of one series from its base signal [k, r, c] (fat = 1)
    and the patient's tissue texture [k, r, c].

    In-place float32 arithmetic throughout: this is the hot loop of the generator.
    """
    s = signal * texture
    s = ndimage.gaussian_filter(s, sigma=(0, 0.6, 0.6), truncate=3.0)
    np.maximum(s, 0, out=s)
    gamma = site.gamma[0] if sequence == "t1" else site.gamma[1]
    if gamma != 1.0:
        np.power(s, np.float32(gamma), out=s)
    s *= bias_field(rng, s.shape, site.bias)
    s *= np.float32(site.scale)
    sigma = np.float32(site.noise * site.scale)
    # One Gaussian draw serves both channels: the imaginary part is the same draw shifted by a
    # random offset, i.e. other independent samples (halves the slowest step of the generator).
    noise = rng.standard_normal(s.size, dtype=np.float32)
    noise *= sigma
    imag = np.roll(noise, int(rng.integers(1, s.size))).reshape(s.shape)
    real = noise.reshape(s.shape)
    real += s
    magnitude = np.hypot(real, imag, out=real)
    slope, intercept = site.rescale
    if (slope, intercept) != (1.0, 0.0):
        magnitude -= np.float32(intercept)
        magnitude /= np.float32(slope)
    np.rint(magnitude, out=magnitude)
    np.clip(magnitude, 0, 65535, out=magnitude)
    return magnitude.astype(np.uint16)
