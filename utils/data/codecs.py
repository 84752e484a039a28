"""Image codecs of the face-crop cache, chosen by measurement (``bench/data_pipeline.py --codecs``).

* Lossless (``native`` tiles, which cm/rr read pixel for pixel): **lossless WebP** at its fastest
  effort (Pillow's encoder, ``method=0``), decoded by OpenCV's libwebp. On 288×288 tiles of 1080p
  H.264 footage it is 2.5-3× smaller than zstd, lz4 or zlib on the raw pixels and 1.7× smaller than
  PNG, encodes in ~5 ms and decodes in ~1 ms; zstd decodes faster (0.3 ms) but the tiles are most of
  the cache's bytes, and the loader's budget per native sample allows the millisecond. With
  ``compress=False`` tiles are stored raw (no decode cost, ~6× the bytes).
* Lossy (``face`` / ``context`` crops, already resized to what the models are fed): **JPEG** through
  OpenCV's libjpeg-turbo at quality 95 with 4:2:0 chroma: ~45-48 dB PSNR, 8-13 KB per 224 px crop,
  0.1-0.4 ms to encode and ~0.35 ms to decode. Lossy WebP is 2-3× smaller at equal PSNR but 20×
  slower to encode and slower to decode; the loader's throughput is worth more here.

Pillow and OpenCV are both already dependencies (Pillow comes with torchvision and matplotlib).
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

LOSSLESS, LOSSY = "webp-lossless", "jpeg"


def encode_lossy(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV fails only on empty images
        raise ValueError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return buf.tobytes()


def decode_lossy(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB from :func:`encode_lossy` bytes."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_lossless(rgb: np.ndarray, compress: bool = True) -> bytes:
    """Lossless WebP (or the raw pixels when not ``compress``) of an HxWx3 uint8 RGB image.

    The channels are handed to the encoder reversed, so that OpenCV's decoder (which returns BGR)
    gives RGB back without a conversion; lossless WebP keeps green in the middle either way.
    """
    if not compress:
        return np.ascontiguousarray(rgb).tobytes()
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(out, "WEBP", lossless=True, method=0, quality=0,
                                                                exact=True)
    return out.getvalue()


def decode_lossless(data: bytes, hw: tuple[int, int], compress: bool = True) -> np.ndarray:
    """The HxWx3 uint8 RGB image of :func:`encode_lossless` bytes (``hw``: its height and width)."""
    if not compress:
        return np.frombuffer(data, np.uint8).reshape(int(hw[0]), int(hw[1]), 3)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
