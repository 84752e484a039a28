"""Whole-image synthesis for the "generated" classes of the image samples: a small fixed decoder.

A face swap pastes another face into a real photo and leaves the rest of the photo alone. A
generated image has no photo under it: every pixel comes out of a generator. This module is such a
generator, built the way image generators are (a coarse latent grown to full size by learned
upsampling layers, with noise injected at each resolution, as in StyleGAN), with fixed weights:

* the *latent* is a coarse (1/4 size) layout of a face nobody photographed -- an identity drawn for
  the generator alone, rendered and reduced to 32x32 -- so the output shows a plausible face;
* each of two *upsampling layers* is a stride-2 transposed convolution whose 4x4 kernel does not
  split its weight evenly between the two output phases (as trained transposed convolutions do not),
  followed by a 3x3 smoothing convolution and a small channel mix; uneven phases leave the periodic
  "checkerboard" pattern at the layer's output rate that is the classic fingerprint of generated
  images (Odena et al. 2016; Frank et al. 2020 find it as peaks in the spectrum);
* *noise injection* after each layer adds the fine texture the coarse latent lacks. Its strength is
  the one free knob: :func:`synthesize_to_size` sets it so the encoded JPEG has a given byte size,
  so generated files are as large as real ones (no file-size shortcut).

:func:`inpaint` re-generates one region of a real photo with the same decoder and blends it in (the
"inpainting" source of the multi-source sample): local synthesis, not a pasted face.
"""
from __future__ import annotations

import cv2
import numpy as np

LATENT_SCALE = 4            # the latent is 1/4 of the output size
PHASE_GAIN = 0.045          # how unevenly each transposed convolution splits its weight between phases
_KERNEL = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
_SMOOTH = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]], np.float32)


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """RGB uint8 image -> JPEG file bytes (OpenCV/libjpeg, 4:2:0, the same encoder for every class)."""
    bgr = np.ascontiguousarray(image[..., ::-1])
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - encoding an RGB array does not fail
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


class Decoder:
    """The generator's fixed weights, drawn once from ``rng`` (one generator = one set of weights)."""

    def __init__(self, rng: np.random.Generator):
        self.kernels, self.mixes, self.tints = [], [], []
        for _ in range(2):
            phase = 1 + rng.choice([-1, 1]) * PHASE_GAIN * np.array([1, -1, 1, -1], np.float32)
            k1 = _KERNEL * phase   # the two output phases get 1 + g and 1 - g of the input
            self.kernels.append(np.outer(k1, k1).astype(np.float32))
            self.mixes.append((np.eye(3) + rng.normal(0, 0.03, (3, 3))).astype(np.float32))
            self.tints.append(rng.uniform(0.8, 1.2, 3).astype(np.float32))

    def __call__(self, latent: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        """Grow a float latent (h×w×3 in [0, 1]) to 4x its size; ``noise`` scales the injected texture."""
        x = latent.astype(np.float32)
        for kernel, mix, tint in zip(self.kernels, self.mixes, self.tints):
            up = np.zeros((2 * x.shape[0], 2 * x.shape[1], 3), np.float32)
            up[::2, ::2] = x
            x = cv2.filter2D(up, -1, kernel, borderType=cv2.BORDER_REFLECT)           # transposed convolution
            x = cv2.filter2D(x, -1, _SMOOTH, borderType=cv2.BORDER_REFLECT) @ mix.T   # smoothing, channel mix
            grain = rng.standard_normal(x.shape[:2]).astype(np.float32)[..., None]
            x = x + noise * grain * tint                                             # noise injection
        return np.clip(x, 0.0, 1.0)


def latent_of(image: np.ndarray) -> np.ndarray:
    """The coarse layout a decoder starts from: ``image`` reduced to 1/4 size, floats in [0, 1]."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // LATENT_SCALE, h // LATENT_SCALE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def synthesize(decoder: Decoder, layout: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A generated RGB uint8 image of ``layout``'s size (multiple of 4) with texture strength ``noise``."""
    out = decoder(latent_of(layout), noise, np.random.default_rng(seed))
    return (out * 255.0 + 0.5).astype(np.uint8)


def synthesize_to_size(decoder: Decoder, layout: np.ndarray, target: int, quality: int, seed: int) -> bytes:
    """The JPEG of a generated image whose byte size is as close as possible to ``target``.

    The byte size grows with the injected texture, so a bisection on its strength finds it; the same
    ``seed`` draws the same texture at every strength, so the search is smooth.
    """
    return to_size(lambda noise: synthesize(decoder, layout, noise, seed), target, quality, 0.2)


def to_size(make, target: int, quality: int, high: float, low: float = 0.0, steps: int = 12) -> bytes:
    """The JPEG of ``make(strength)`` whose byte size is nearest ``target``, for ``strength`` in
    ``[low, high]`` (the size grows with it: a bisection)."""
    lo, hi, best = low, high, None
    for _ in range(steps):
        mid = (lo + hi) / 2
        data = jpeg_bytes(make(mid), quality)
        if best is None or abs(len(data) - target) < abs(len(best) - target):
            best = data
        lo, hi = (mid, hi) if len(data) < target else (lo, mid)
    return best


def regrain(fake: np.ndarray, original: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """Post-processing of a face swap where it changed ``original``: film grain of ``strength`` (0-255
    scale) when positive, a blur of ``-strength`` pixels when negative.

    Face-swap pipelines re-grain (or soften) the pasted face so that it matches the footage around it.
    """
    changed = (np.abs(fake.astype(np.int16) - original.astype(np.int16)).max(axis=2) > 1).astype(np.float32)
    mask = cv2.GaussianBlur(changed, (0, 0), 2.0)[..., None]
    out = fake.astype(np.float32)
    if strength >= 0:
        grain = np.random.default_rng(seed).standard_normal(fake.shape[:2]).astype(np.float32)[..., None]
        out += strength * grain * mask
    else:
        out += (cv2.GaussianBlur(out, (0, 0), -strength) - out) * mask
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def inpaint(decoder: Decoder, image: np.ndarray, mask: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """``image`` with the region ``mask`` (float, 0..1, image-sized) re-generated by ``decoder``."""
    generated = synthesize(decoder, image, noise, seed).astype(np.float32)
    m = mask[..., None].astype(np.float32)
    return np.clip(image.astype(np.float32) * (1 - m) + generated * m + 0.5, 0, 255).astype(np.uint8)
