"""Identities and real videos ("shots") made from the two real source faces.

An :class:`Identity` is a source face with a fixed shape warp (smooth displacements anchored to the face
landmarks), a mirror flag, a skin tone and a voice, so one real face yields many distinct people. A
:class:`Shot` is one real video of an identity: framing, camera motion, background, lighting. Both are
plain data drawn from a seeded generator; :mod:`utils.data.sample.render` turns a shot into frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from utils.data.sample import sources

Bump = tuple[float, float, float, float, float]   # anchor u, v; displacement du, dv; radius (eye distances)


@dataclass(frozen=True)
class Identity:
    """A person: a real source face plus a fixed shape warp, mirror, colour transform and voice."""

    name: str
    face: str                                  # key of sources.FACES
    mirror: bool
    aspect: float                              # horizontal stretch of the face layer
    bumps: tuple[Bump, ...]                    # shape warp in the face frame (origin: eye midpoint)
    gains: tuple[float, float, float]          # skin tone (per-channel gains)
    saturation: float
    gamma: float
    voice: float                               # fundamental frequency of the voice, Hz


@dataclass(frozen=True)
class Shot:
    """One real video of an identity; ``seed`` drives its mouth motion, head motion and sensor noise."""

    identity: Identity
    size: tuple[int, int]                      # output (width, height)
    frames: int
    fps: float
    seed: int
    start: int                                 # first source frame of a moving face
    face_height: float                         # face box height in output pixels
    centre: tuple[float, float]                # nominal face centre, fractions of width / height
    composite: bool                            # head and shoulders over a background clip, else the scene
    background: str
    bg_start: int
    bg_view: tuple[float, float, float]        # left, top, width of the visible part, fractions of the clip
    bg_mirror: bool
    camera: tuple[float, ...]                  # pan x, pan y (px), zoom, frequency (Hz), three phases
    exposure: tuple[float, float, float]       # amplitude, frequency (Hz), phase
    grade: tuple[float, float, float]          # camera white balance
    noise: float                               # sensor noise sigma (0-255 scale)


def random_identity(rng: np.random.Generator, name: str, face: str) -> Identity:
    """Draw a distinct person from a source face: face shape, mirror, skin tone and voice."""
    jaw, cheek, eyes = rng.uniform(-0.16, 0.16), rng.uniform(-0.12, 0.12), rng.uniform(-0.06, 0.06)
    chin, nose, brow = rng.uniform(-0.1, 0.18), rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)
    bumps = ((0.9, 1.3, jaw, 0.0, 0.55), (-0.9, 1.3, -jaw, 0.0, 0.55),
             (1.0, 0.4, cheek, 0.0, 0.5), (-1.0, 0.4, -cheek, 0.0, 0.5),
             (0.5, 0.0, eyes, 0.0, 0.3), (-0.5, 0.0, -eyes, 0.0, 0.3),
             (0.0, 1.75, 0.0, chin, 0.6), (0.0, 0.7, 0.0, nose, 0.35), (0.0, -0.5, 0.0, brow, 0.5))
    gains = (rng.uniform(0.9, 1.12), rng.uniform(0.9, 1.08), rng.uniform(0.85, 1.12))
    return Identity(name=name, face=face, mirror=bool(rng.random() < 0.5),
                    aspect=float(rng.uniform(0.9, 1.1)), bumps=tuple(_floats(b) for b in bumps),
                    gains=_floats(gains), saturation=float(rng.uniform(0.75, 1.25)),
                    gamma=float(rng.uniform(0.85, 1.2)), voice=float(rng.uniform(95.0, 230.0)))


def random_shot(rng: np.random.Generator, identity: Identity, size: tuple[int, int], frames: int,
                fps: float) -> Shot:
    """Draw one real video of ``identity``: framing, camera path, background, lighting and noise."""
    width, height = size
    background = sources.BACKGROUNDS[int(rng.integers(len(sources.BACKGROUNDS)))]
    composite = bool(rng.random() < 0.6)
    if not composite and identity.face == "carphone":
        # The 176x144 carphone scene must cover the frame: its 58 px face is then scaled at least this much.
        face_height = 58.0 * 1.08 * max(width / 176, height / 144)
    else:
        face_height = min(width, height) * rng.uniform(0.4, 0.52)
    # Big Buck Bunny's left half holds the (cartoon) bunny; keep to its right half so no second face shows.
    left = rng.uniform(0.5, 0.7) if background == "bigbuckbunny.mp4" else rng.uniform(0.0, 0.45)
    view = (left, rng.uniform(0.0, 0.2), rng.uniform(0.45, 0.5 if left > 0.45 else 0.55))
    camera = (rng.uniform(2, 8), rng.uniform(1, 5), rng.uniform(0.0, 0.06), rng.uniform(0.15, 0.6),
              *rng.uniform(0, 2 * np.pi, 3))
    exposure = (rng.uniform(0.0, 0.06), rng.uniform(0.2, 1.0), rng.uniform(0, 2 * np.pi))
    return Shot(identity=identity, size=size, frames=frames, fps=fps, seed=int(rng.integers(2**31)),
                start=int(rng.integers(120)), face_height=float(face_height),
                centre=(float(rng.uniform(0.38, 0.62)), float(rng.uniform(0.4, 0.5))), composite=composite,
                background=background, bg_start=int(rng.integers(1 << 16)), bg_view=_floats(view),
                bg_mirror=bool(rng.random() < 0.5), camera=_floats(camera), exposure=_floats(exposure),
                grade=_floats(rng.uniform(0.92, 1.08, 3)), noise=float(rng.uniform(0.0, 1.2)))


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def synth_mouth(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """A speech-like mouth-opening curve in [0, 1]: syllables of 0.12-0.28 s, short gaps, some pauses."""
    times = np.arange(frames) / fps
    curve = np.zeros(frames, np.float32)
    t = rng.uniform(0.0, 0.2)
    while t < times[-1] + 0.3:
        length, height = rng.uniform(0.12, 0.28), rng.uniform(0.35, 1.0)
        inside = (times >= t) & (times < t + length)
        curve[inside] = np.maximum(curve[inside], height * np.sin(np.pi * (times[inside] - t) / length) ** 2)
        t += length + (rng.uniform(0.3, 0.6) if rng.random() < 0.15 else rng.uniform(0.03, 0.2))
    return curve


def open_mouth(image: np.ndarray, landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Open the mouth of a still face by ``amount`` in [0, 1]: drop lower lip and jaw, darken the gap."""
    if amount <= 0.02:
        return image
    left, right = landmarks[sources.MOUTH_LEFT], landmarks[sources.MOUTH_RIGHT]
    width = float(np.linalg.norm(right - left))
    cx, cy = (left + right) / 2
    drop = amount * 0.3 * width
    x0, x1 = max(int(cx - 1.2 * width), 0), min(int(cx + 1.2 * width), image.shape[1])
    y0, y1 = max(int(cy - 0.4 * width), 0), min(int(cy + 2.0 * width), image.shape[0])
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    below = ys - cy
    # The jaw drops most just under the lip line, fading sideways and towards the neck.
    weight = np.exp(-((xs - cx) / (0.7 * width)) ** 2)
    weight *= np.clip((below + 0.05 * width) / (0.25 * width), 0, 1)
    weight *= np.exp(-(np.maximum(below - width, 0) / (0.5 * width)) ** 2)
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, xs, ys - drop * weight, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT)
    cavity = np.zeros((y1 - y0, x1 - x0), np.float32)
    centre, axes = (int(cx - x0), int(cy - y0 + 0.5 * drop)), (int(0.3 * width), max(1, int(0.5 * drop)))
    cv2.ellipse(cavity, centre, axes, 0, 0, 360, 1.0, -1)
    cavity = cv2.GaussianBlur(cavity, (0, 0), 0.06 * width)[..., None] * 0.85
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (region * (1 - cavity) + np.array([70.0, 25.0, 30.0]) * cavity).astype(np.uint8)
    return out


def head_motion(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """Small smooth head motion for a still face: rows of (angle in degrees, scale, dx, dy) per frame."""
    t = np.arange(frames) / fps
    rows = []
    for amplitude in (3.0, 0.03, 3.0, 2.0):
        f, phase = rng.uniform(0.2, 0.7, 2), rng.uniform(0, 2 * np.pi, 2)
        wave = 0.7 * np.sin(2 * np.pi * f[0] * t + phase[0]) + 0.3 * np.sin(2 * np.pi * f[1] * t + phase[1])
        rows.append(amplitude * wave)
    rows[1] = 1.0 + rows[1]
    return np.stack(rows, axis=1)
