"""Render a shot into frames: the identity's real face moving in its scene, with per-frame ground truth.

Per frame, one affine maps the source face (a carphone frame, or the astronaut photo with an animated
mouth and head) to the output: placement, mirror and aspect of the identity, camera pan and zoom, and
for the still face a small head motion. The identity's shape warp is applied on top as a smooth backward
displacement field; the face layer is then coloured, composited over a moving background (or shown with
its own scene), and passes through the camera (exposure drift, white balance, sensor noise).
:func:`render` is a pure function of the shot: the same shot gives the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from utils.data.sample import sources
from utils.data.sample.actors import (
    Bump,
    Identity,
    Shot,
    head_motion,
    open_mouth,
    synth_mouth,
)
from utils.data.sample.geometry import (
    affine3,
    face_axes,
    forward_points,
    invert_rows,
    ping_pong,
)

_COARSE = 4   # the shape warp is smooth: it is evaluated on a grid this much coarser, then upsampled


@dataclass
class Footage:
    """Rendered frames of a shot with their ground truth (output pixels)."""

    frames: np.ndarray      # [T, H, W, 3] uint8 RGB
    boxes: np.ndarray       # [T, 4] int32, x1 y1 x2 y2
    landmarks: np.ndarray   # [T, 5, 2] float32
    mouth: np.ndarray       # [T] float32, mouth opening in [0, 1]
    fps: float


def render(shot: Shot) -> Footage:
    """Render a real video of ``shot`` and its per-frame face boxes, landmarks and mouth opening."""
    face = sources.FACES[shot.identity.face]()
    rng = np.random.default_rng(shot.seed)
    width, height = shot.size
    count = shot.frames
    index = np.array([0 if face.still else ping_pong(shot.start + t, len(face.frames)) for t in range(count)])
    mouth = synth_mouth(rng, count, shot.fps) if face.still else face.mouth[index]
    head = head_motion(rng, count, shot.fps) if face.still else None
    placement = _placement(shot, face, index)
    table = _colour_table(shot.identity)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.stack([xs, ys], axis=-1)
    # Centres of the coarse cells, where cv2.resize puts the samples it interpolates between.
    coarse = np.ascontiguousarray(grid[::_COARSE, ::_COARSE] + (_COARSE - 1) / 2)
    footage = Footage(frames=np.empty((count, height, width, 3), np.uint8),
                      boxes=np.empty((count, 4), np.int32), landmarks=np.empty((count, 5, 2), np.float32),
                      mouth=mouth.astype(np.float32), fps=shot.fps)
    for t in range(count):
        image, points, box = face.frames[index[t]], face.landmarks[index[t]], face.boxes[index[t]]
        matrix = _camera(shot, t) @ placement
        if head is not None:
            image = open_mouth(image, points, float(mouth[t]))
            matrix = matrix @ _head_pose(points, head[t])
        if not shot.composite:
            matrix = _cover(matrix, (image.shape[1], image.shape[0]), shot.size)
        source = _backward_map(matrix, grid, coarse, points, shot.identity.bumps)
        border = cv2.BORDER_CONSTANT if shot.composite else cv2.BORDER_REFLECT
        layer = cv2.remap(image, source, None, cv2.INTER_LINEAR, borderMode=border)
        layer = _colour(layer, shot.identity, table)
        footage.landmarks[t], out_box = _ground_truth(matrix, points, box, shot.identity.bumps)
        if shot.composite:
            inside = cv2.remap(np.ones(image.shape[:2], np.float32), source, None, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
            alpha = (_head_mask(out_box, shot.size) * inside)[..., None]
            layer = layer * alpha + _background(shot, t).astype(np.float32) * (1 - alpha)
        footage.frames[t] = _camera_response(layer, shot, t, rng)
        footage.boxes[t] = np.clip(np.round(out_box), 0, [width - 1, height - 1, width - 1, height - 1])
    return footage


def _bump_field(points: np.ndarray, landmarks: np.ndarray, bumps: tuple[Bump, ...]) -> np.ndarray:
    """Displacement of the identity's shape warp at ``points`` [..., 2], anchored to ``landmarks``."""
    origin, along, across, unit = face_axes(landmarks)
    points = points.astype(np.float32)
    field = np.zeros_like(points)
    for u, v, du, dv, radius in bumps:
        anchor = (origin + unit * (u * along + v * across)).astype(np.float32)
        weight = np.exp(((points - anchor) ** 2).sum(-1) * np.float32(-0.5 / (radius * unit) ** 2))
        field += weight[..., None] * (unit * (du * along + dv * across)).astype(np.float32)
    return field


def _backward_map(matrix: np.ndarray, grid: np.ndarray, coarse: np.ndarray, landmarks: np.ndarray,
                  bumps: tuple[Bump, ...]) -> np.ndarray:
    """For every output pixel, where to sample the source: the inverse affine, then the shape warp."""
    back = invert_rows(matrix).astype(np.float32)
    source = grid @ back[:, :2].T + back[:, 2]
    field = _bump_field(coarse @ back[:, :2].T + back[:, 2], landmarks, bumps)
    return source - cv2.resize(field, (grid.shape[1], grid.shape[0]), interpolation=cv2.INTER_LINEAR)


def _ground_truth(matrix: np.ndarray, points: np.ndarray, box: np.ndarray,
                  bumps: tuple[Bump, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and face box in output pixels: source points through the shape warp and the affine."""
    x1, y1, x2, y2 = box
    ring = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2], [(x1 + x2) / 2, y2], [x1, (y1 + y2) / 2],
                     [x2, (y1 + y2) / 2]], np.float32)
    ring = forward_points(matrix, ring + _bump_field(ring, points, bumps))
    landmarks = forward_points(matrix, points + _bump_field(points, points, bumps))
    if np.linalg.det(matrix[:2, :2]) < 0:      # mirrored: the image-left eye is now the other one
        landmarks = landmarks[list(sources.MIRROR_ORDER)]
    return landmarks, np.array([ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()])


def _colour_table(identity: Identity) -> np.ndarray:
    """Per-channel lookup table of the identity's skin tone (gains) and gamma, for ``cv2.LUT``."""
    levels = np.arange(256, dtype=np.float32)[:, None] * np.array(identity.gains, np.float32)
    return np.round(255.0 * (np.clip(levels, 0, 255) / 255.0) ** identity.gamma).astype(np.uint8)[None]


def _colour(image: np.ndarray, identity: Identity, table: np.ndarray) -> np.ndarray:
    """Apply the identity's saturation, skin tone and gamma to the face layer (uint8 in, float32 out)."""
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    mixed = cv2.addWeighted(image, identity.saturation, grey, 1 - identity.saturation, 0)
    return cv2.LUT(mixed, table).astype(np.float32)


def _placement(shot: Shot, face: sources.Face, index: np.ndarray) -> np.ndarray:
    """3x3 affine from source to output pixels: scale, mirror, aspect, and the nominal face position."""
    width, height = shot.size
    boxes = face.boxes[index]
    scale = shot.face_height / float((boxes[:, 3] - boxes[:, 1]).mean())
    cx, cy = (boxes[:, 0] + boxes[:, 2]).mean() / 2, (boxes[:, 1] + boxes[:, 3]).mean() / 2
    sx = scale * shot.identity.aspect * (-1 if shot.identity.mirror else 1)
    tx, ty = shot.centre[0] * width, shot.centre[1] * height
    return affine3(np.array([[sx, 0, tx - sx * cx], [0, scale, ty - scale * cy]]))


def _head_pose(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """3x3 head motion of a still face (angle, scale, dx, dy) about its landmarks' centre."""
    cx, cy = points.mean(axis=0)
    rotation = cv2.getRotationMatrix2D((float(cx), float(cy)), float(pose[0]), float(pose[1]))
    rotation[:, 2] += pose[2:]
    return affine3(rotation)


def _camera(shot: Shot, t: int, parallax: float = 1.0) -> np.ndarray:
    """3x3 camera motion at frame ``t``: smooth pan and zoom about the frame centre."""
    width, height = shot.size
    pan_x, pan_y, zoom, freq, p0, p1, p2 = shot.camera
    s = 2 * np.pi * freq * t / shot.fps
    z = 1 + zoom * np.sin(s + p2)
    dx, dy = parallax * pan_x * np.sin(s + p0), parallax * pan_y * np.sin(0.7 * s + p1)
    cx, cy = width / 2, height / 2
    return affine3(np.array([[z, 0, cx + dx - z * cx], [0, z, cy + dy - z * cy]]))


def _cover(matrix: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Shift ``matrix`` so the warped source rectangle covers the output frame where it can."""
    w, h = source_size
    corners = forward_points(matrix, np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32))
    shift = []
    for axis, limit in enumerate(size):
        lo, hi = corners[:, axis].min(), corners[:, axis].max()
        shift.append(-lo if lo > 0 else (limit - hi if hi < limit else 0.0))
    return affine3(np.array([[1, 0, shift[0]], [0, 1, shift[1]]])) @ matrix


def _head_mask(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Soft head-and-shoulders matte in output pixels, for compositing over a background."""
    width, height = size
    mask = np.zeros((height, width), np.float32)
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    cv2.ellipse(mask, (int(cx), int(cy + 0.5 * h)), (int(1.0 * w), int(1.35 * h)), 0, 0, 360, 1.0, -1)
    cv2.ellipse(mask, (int(cx), int(cy + 1.9 * h)), (int(2.0 * w), int(1.0 * h)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.08 * h))


def _background(shot: Shot, t: int) -> np.ndarray:
    """The background frame at ``t``: a moving window into a real clip, panning at half the camera's pace."""
    clip, cuts = sources.background(shot.background)
    first, stop = cuts[shot.bg_start % len(cuts)]
    frame = clip[first + ping_pong(shot.bg_start // len(cuts) + t, stop - first)]
    width, height = shot.size
    clip_h, clip_w = frame.shape[:2]
    view_w = min(shot.bg_view[2] * clip_w, clip_w, clip_h * width / height)
    scale = width / view_w
    left = min(shot.bg_view[0] * clip_w, clip_w - view_w)
    top = min(shot.bg_view[1] * clip_h, clip_h - view_w * height / width)
    view = affine3(np.array([[scale, 0, -scale * left], [0, scale, -scale * top]]))
    if shot.bg_mirror:   # flip the view, not the clip, so the chosen part of the clip stays in view
        view = affine3(np.array([[-1, 0, width], [0, 1, 0]])) @ view
    matrix = _camera(shot, t, parallax=0.5) @ view
    return cv2.warpAffine(frame, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _camera_response(layer: np.ndarray, shot: Shot, t: int, rng: np.random.Generator) -> np.ndarray:
    """Exposure drift, white balance and sensor noise of the camera; float32 layer in, uint8 frame out."""
    gain = 1 + shot.exposure[0] * np.sin(2 * np.pi * shot.exposure[1] * t / shot.fps + shot.exposure[2])
    layer = layer * (gain * np.array(shot.grade, np.float32))
    if shot.noise > 0:
        layer += rng.normal(0.0, shot.noise, layer.shape).astype(np.float32)
    return np.clip(layer + 0.5, 0, 255).astype(np.uint8)
