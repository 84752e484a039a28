"""On-disk layout of the face-crop cache: per-video files, the index, the failures list, what it holds.

```
<cache>/cache.json             what the cache holds: format, build settings, and per membership (spread
                               frames, clip runs) the crop policies stored with their size / margin /
                               scale; datasets check it (:func:`check_serves`) before reading a pixel
<cache>/videos/<safe_id>.dfc   one video (:class:`VideoFile`): per stored frame and policy one encoded
                               crop — ``native`` tiles lossless (un-resampled, grid-aligned, lossless
                               WebP), ``face`` / ``context`` crops resized to the stored size (JPEG);
                               boxes, tile origins, frame numbers and times, source size, runs, audio
                               (int16 mono, kept around the stored frames, sample 0 = frame 0)
<cache>/index.csv              one row per stored frame and membership (spread frame, or frame of run k);
                               ``detected`` is 1 where the detector found the face on that frame, 0
                               where the box is interpolated (a miss, or a frame inside a run)
<cache>/failures.csv           video_id, path, reason for every video that could not be used
```
Under a distributed launch each rank writes ``index.part-<rank>-of-<world>.csv`` (and a failures part);
the rank that finishes last merges them, and :func:`load_index` merges parts newer than the index.
"""
from __future__ import annotations

import csv
import json
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from utils.core.errors import InputError
from utils.core.model import InputSpec
from utils.core.fileio import atomic_write, atomic_write_json, remove_stale_temporaries
from utils.data.records import VideoRecord

INDEX_FIELDS = ("video_id", "frame_index", "run", "crop_file", "slot", "x1", "y1", "x2", "y2", "detected",
                "time", "frame_w", "frame_h", "label", "method", "group", "split", "dataset", "chunk",
                "has_audio")
FAILURE_FIELDS = ("video_id", "path", "reason")
MAGIC = b"DFC2"
FORMAT = 2  # the cache layout version recorded in ``cache.json``
_INT = ("frame_index", "run", "slot", "frame_w", "frame_h", "label")
_FLOAT = ("x1", "y1", "x2", "y2", "time")
_BOOL = ("detected", "has_audio")


class CacheError(InputError):
    """A cache that is missing or unreadable."""


def safe_id(video_id: str) -> str:
    """File-system-safe, collision-free name for a video id.

    ``Deepfakes/000_003`` -> ``Deepfakes_000_003-<crc32>``: readable, and two ids that clean up to the
    same stem still get different names.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:120]
    return f"{stem}-{zlib.crc32(video_id.encode()):08x}"


def video_file(cache_dir: str | Path, video_id: str) -> Path:
    """Where a video's stored crops live (written atomically: its existence means finished)."""
    return Path(cache_dir) / "videos" / f"{safe_id(video_id)}.dfc"


def save_video_atomic(path: Path, arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> None:
    """Write one video's file atomically: a killed build leaves no half file.

    Layout: ``MAGIC``, a little-endian uint32 header length, a JSON header naming every array
    (offset, dtype, shape) and blob (offset, length), then the data (offsets count from its start).
    Temporaries left by a killed earlier build of the same video are removed first (one rank owns a
    video, so no other process is writing them).
    """
    remove_stale_temporaries(path.parent, path.name)
    header: dict = {"arrays": {}, "blobs": {}}
    chunks, offset = [], 0
    for name, a in arrays.items():
        a = np.asarray(a)  # (np.ascontiguousarray would make a 0-d array 1-d)
        header["arrays"][name] = [offset, a.dtype.str, list(a.shape)]
        chunks.append(a.tobytes())
        offset += a.nbytes
    for name, b in blobs.items():
        header["blobs"][name] = [offset, len(b)]
        chunks.append(bytes(b))
        offset += len(b)
    head = json.dumps(header, separators=(",", ":")).encode()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(head)) + head)
            for c in chunks:
                f.write(c)
    atomic_write(path, write)


class VideoFile:
    """One stored video, read with ``pread``: the header on open, arrays and blobs on demand.

    ``video[name]`` gives an array (kept after the first read), :meth:`blob` the bytes of one stored
    crop. The file stays open until :meth:`close`; opening costs one read of the header.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDONLY)
        try:
            first = os.pread(self.fd, 1 << 16, 0)
            if first[:4] != MAGIC:
                raise CacheError(f"{self.path} is not a face-crop cache file of this format: rebuild the cache")
            (n,) = struct.unpack("<I", first[4:8])
            head = first[8:8 + n] if 8 + n <= len(first) else os.pread(self.fd, n, 8)
            meta = json.loads(head)
        except Exception:
            os.close(self.fd)
            raise
        self.base = 8 + n
        self.arrays_at, self.blobs_at = meta["arrays"], meta["blobs"]
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.arrays_at or name in self.blobs_at

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            offset, dtype, shape = self.arrays_at[name]
            dt = np.dtype(dtype)
            size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            data = os.pread(self.fd, size, self.base + offset)
            self._arrays[name] = np.frombuffer(data, dt).reshape(shape)
        return self._arrays[name]

    def blob(self, name: str) -> bytes:
        offset, length = self.blobs_at[name]
        return os.pread(self.fd, length, self.base + offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def write_csv_atomic(path: Path, fields: Iterable[str], rows: Iterable[dict]) -> None:
    """Write rows as CSV atomically (readers never see half a file)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)


def _typed(row: dict) -> dict:
    for k in _INT:
        row[k] = int(row[k])
    for k in _FLOAT:
        row[k] = float(row[k])
    for k in _BOOL:
        row[k] = row[k] in ("1", "True", "true")
    row["chunk"] = int(row["chunk"]) if row["chunk"] not in ("", "None") else None
    return row


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def part_name(kind: str, rank: int, world_size: int) -> str:
    """File name of one rank's ``index`` or ``failures`` part."""
    return f"{kind}.part-{rank:03d}-of-{world_size:03d}.csv"


def _parts(cache_dir: Path, kind: str) -> list[Path]:
    return sorted(cache_dir.glob(f"{kind}.part-*-of-*.csv"))


def merge_rows(old: list[dict], new_parts: list[list[dict]], covered: set[str]) -> list[dict]:
    """Rows of ``old`` for videos no part covers, then every part's rows."""
    merged = [r for r in old if r["video_id"] not in covered]
    for rows in new_parts:
        merged.extend(rows)
    return merged


def merge_parts(cache_dir: str | Path, world_size: int, write: bool = True) -> tuple[list[dict], list[dict]]:
    """Merge the per-rank index and failure parts into ``index.csv`` / ``failures.csv``.

    Videos a part covers (indexed or failed) replace their older rows, so caches grown over several
    runs (DFDC chunk by chunk) keep everything. Returns the merged raw (string) rows.
    """
    cache_dir = Path(cache_dir)
    idx_parts = [_read_csv(cache_dir / part_name("index", r, world_size)) for r in range(world_size)]
    fail_parts = [_read_csv(cache_dir / part_name("failures", r, world_size)) for r in range(world_size)]
    covered = {r["video_id"] for rows in idx_parts + fail_parts for r in rows}
    old_index = _read_csv(cache_dir / "index.csv") if (cache_dir / "index.csv").is_file() else []
    old_fail = _read_csv(cache_dir / "failures.csv") if (cache_dir / "failures.csv").is_file() else []
    index = merge_rows(old_index, idx_parts, covered)
    failures = merge_rows(old_fail, fail_parts, covered)
    if write:
        write_csv_atomic(cache_dir / "index.csv", INDEX_FIELDS, index)
        write_csv_atomic(cache_dir / "failures.csv", FAILURE_FIELDS, failures)
    return index, failures


def parts_complete(cache_dir: str | Path, world_size: int) -> bool:
    """Whether every rank of ``world_size`` has written both of its parts."""
    cache_dir = Path(cache_dir)
    return all((cache_dir / part_name(k, r, world_size)).is_file()
               for k in ("index", "failures") for r in range(world_size))


def _fresh_world(cache_dir: Path) -> int | None:
    """World size of a complete set of parts newer than ``index.csv``, if any."""
    index = cache_dir / "index.csv"
    stamp = index.stat().st_mtime if index.is_file() else -1.0
    for p in _parts(cache_dir, "index"):
        world = int(p.stem.rsplit("-of-", 1)[1])
        if p.stat().st_mtime > stamp and parts_complete(cache_dir, world):
            return world
    return None


def _raw_index(cache_dir: Path) -> Iterator[dict]:
    """Index rows as read (strings), streamed: a DFDC-sized index never sits in memory whole."""
    world = _fresh_world(cache_dir)
    if world is not None:
        yield from merge_parts(cache_dir, world, write=False)[0]
    elif (cache_dir / "index.csv").is_file():
        with open(cache_dir / "index.csv", newline="") as f:
            yield from csv.DictReader(f)
    else:
        raise CacheError(f"no face-crop cache index in {cache_dir}: build it with `python "
                         f"launch/extract_faces.py --dataset <name> --root <data> --cache {cache_dir}`")


def load_index(cache_dir: str | Path, where: Callable[[dict], bool] | None = None) -> list[dict]:
    """Rows of the cache index with typed values (ints, floats, bools; chunk ``None`` if unset).

    Args:
        cache_dir: the cache.
        where: keep only the rows it accepts (applied while reading, so only those are held).

    Raises:
        CacheError: no index (the cache was never built, or its build is still running).
    """
    rows = map(_typed, _raw_index(Path(cache_dir)))
    return [r for r in rows if where(r)] if where is not None else list(rows)


def load_failures(cache_dir: str | Path) -> list[dict]:
    """Rows of ``failures.csv`` (video_id, path, reason); empty if there is none."""
    cache_dir = Path(cache_dir)
    world = _fresh_world(cache_dir)
    if world is not None:
        return merge_parts(cache_dir, world, write=False)[1]
    path = cache_dir / "failures.csv"
    return _read_csv(path) if path.is_file() else []


def cache_is_complete(cache_dir: str | Path, records: list[VideoRecord]) -> bool:
    """True when every record is either indexed or listed as a failure."""
    try:
        indexed = {r["video_id"] for r in _raw_index(Path(cache_dir))}
    except CacheError:
        return False
    failed = {r["video_id"] for r in load_failures(cache_dir)}
    return all(rec.video_id in failed
               or (rec.video_id in indexed and video_file(cache_dir, rec.video_id).is_file())
               for rec in records)


def rows_for_video(npz: dict | np.lib.npyio.NpzFile, record: VideoRecord, crop_file: str) -> list[dict]:
    """Index rows of one stored video (one per frame membership: spread frames have run -1)."""
    frames, boxes = npz["frame_index"], npz["boxes"]
    detected, times, (h, w) = npz["detected"], npz["times"], npz["frame_hw"]
    has_audio = int(npz["has_audio"])
    rows = []
    for slot, run in zip(npz["member_slot"].tolist(), npz["member_run"].tolist()):
        x1, y1, x2, y2 = (round(float(v), 2) for v in boxes[slot])
        rows.append({"video_id": record.video_id, "frame_index": int(frames[slot]), "run": run,
                     "crop_file": crop_file, "slot": slot, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                     "detected": int(detected[slot]), "time": round(float(times[slot]), 6),
                     "frame_w": int(w), "frame_h": int(h), "label": record.label, "method": record.method,
                     "group": record.group, "split": record.split, "dataset": record.dataset,
                     "chunk": "" if record.chunk is None else record.chunk, "has_audio": has_audio})
    return rows


def read_small(path: Path) -> dict:
    """The small arrays of a stored video (everything but the crops), for re-indexing."""
    keys = ("frame_index", "boxes", "detected", "times", "frame_hw", "member_slot", "member_run", "has_audio")
    with VideoFile(path) as v:
        return {k: np.array(v[k]) for k in keys}


# ---- what a cache holds -----------------------------------------------------------------------

def manifest_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "cache.json"


def write_manifest(cache_dir: str | Path, manifest: dict) -> None:
    """Record what a cache holds (``cache.json``); a cache built with other settings is refused."""
    path = manifest_path(cache_dir)
    if path.is_file():
        old = load_manifest(cache_dir)
        if old != manifest:
            raise CacheError(f"{cache_dir} was built with other settings ({old.get('serves')}, build "
                             f"{old.get('build')}) than asked for now ({manifest.get('serves')}, build "
                             f"{manifest.get('build')}): give another data.cache folder or delete this one")
        return
    atomic_write_json(path, manifest)


def load_manifest(cache_dir: str | Path) -> dict:
    """``cache.json`` of a cache; a cache without one (or of another format) is refused."""
    path = manifest_path(cache_dir)
    if not path.is_file():
        raise CacheError(f"{cache_dir} has no cache.json: it was built by an earlier version of the toolkit "
                         "(lossless regions) or is not a face-crop cache; rebuild it (delete the folder, or "
                         "point data.cache elsewhere)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise CacheError(f"{path}: cache format {manifest.get('format')} is not {FORMAT}: rebuild the cache")
    return manifest


def _mismatch(policy: str, held: dict, spec: InputSpec, margin: float) -> str | None:
    """Why stored crops of ``policy`` cannot serve ``spec`` (None when they can)."""
    if spec.image_size > held["size"]:
        return (f"'{policy}' crops are stored for inputs up to {held['size']} px, the model asks for "
                f"{spec.image_size} (set data.cache_size={spec.image_size})")
    if policy == "face" and abs(held["margin"] - margin) > 1e-9:
        return f"face crops are stored with margin {held['margin']}, the run asks for {margin} (data.margin)"
    if policy == "context" and abs(held["context_scale"] - spec.context_scale) > 1e-9:
        return (f"context crops are stored at {held['context_scale']}x the face box, the model asks for "
                f"{spec.context_scale}x")
    return None


def check_serves(cache_dir: str | Path, spec: InputSpec, clips: bool, margin: float) -> dict:
    """Check that the cache holds the crops ``spec`` needs; returns what it holds for them.

    Raises:
        CacheError: the cache holds no crops of that policy (for frames, or for clips), or holds them
            at a smaller size, another margin or another context scale; the message says what to set.
    """
    manifest = load_manifest(cache_dir)
    kind = "clips" if clips else "frames"
    held = manifest["serves"][kind]
    setting = "data.cache_clip_crops" if clips else "data.cache_crops"
    if spec.crop not in held:
        what = "native (un-resampled, grid-aligned) pixels" if spec.crop == "native" else f"'{spec.crop}' crops"
        raise CacheError(f"the cache {cache_dir} holds no {what} for {kind}: it was built for the crop "
                         f"policies {sorted(held)} only. Rebuild it with '{spec.crop}' in {setting} "
                         f"(e.g. --set \"{setting}=[{', '.join(sorted(set(held) | {spec.crop}))}]\")")
    why = _mismatch(spec.crop, held[spec.crop], spec, margin)
    if why:
        raise CacheError(f"the cache {cache_dir} cannot serve this model's {kind}: {why}; rebuild the cache")
    return held[spec.crop]
