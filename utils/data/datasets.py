"""Datasets over the face-crop cache: frame samples, clip samples, clip + audio samples.

What a sample looks like comes from the model's :class:`InputSpec` — crop policy, size, clip length,
audio — so no model is named here. Samples follow the batch contract of :mod:`utils.core.model`:
``image`` uint8 3×S×S (or ``clip`` T×3×S×S of consecutive frames of one stored run), ``audio``
n_mels×(T·mel_per_frame) and ``audio_mask`` when the spec asks for audio, ``label``, ``video_id``,
``method``, ``frame_index``.

Items are cheap: a per-process LRU keeps recently used cache files open and each item decompresses
only the regions it needs; datasets pickle without open files, so DataLoader workers open their own.
Index rows are held as columns (:class:`Rows`): a DFDC-sized split takes tens of megabytes, not
gigabytes of dicts that every forked worker would slowly copy.
"""
from __future__ import annotations

import logging
import zlib
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.core.config import DataConfig, SynthesisConfig
from utils.core.model import InputSpec
from utils.data.audio import mel_window
from utils.data import codecs
from utils.data.cache_io import VideoFile, check_serves, load_index
from utils.data.crops import crop_window, cut_window
from utils.data.records import VideoRecord
from utils.data.synthesis.plan import check_synthesis, keep_for_synthesis, synthesis_applies
from utils.data.transforms import build_transforms
from utils.data.twins import Edit, Twins, box_in_crop

logger = logging.getLogger(__name__)

Transform = Callable[..., list[np.ndarray]]  # transform(frames, seed=None) -> frames


class _Video:
    """One open cache file: small arrays in memory, crops and audio read and decoded on demand."""

    def __init__(self, path: Path):
        self.file = VideoFile(path)
        self.times = self.file["times"]
        self.fps = float(self.file["fps"])
        self.has_audio = bool(self.file["has_audio"])
        self.sample_rate = int(self.file["sample_rate"])
        self.compress = not bool(self.file["lossless_raw"])
        names, tiles = self.file["tile_names"].tolist(), self.file["tiles"]
        self.tiles = {n: tuple(t) for n, t in zip(names, tiles.tolist())}
        self._audio: np.ndarray | None = None

    @staticmethod
    def name(policy: str, run: int, slot: int) -> str:
        return f"{policy}:{slot}" if run < 0 else f"{policy}:r{run}:{slot}"

    def crop(self, policy: str, run: int, slot: int) -> np.ndarray:
        """The stored ``face`` / ``context`` crop of a frame (already at the stored size)."""
        return codecs.decode_lossy(self.file.blob(self.name(policy, run, slot)))

    def tile(self, run: int, slot: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The lossless ``native`` tile of a frame and its extent (x0, y0, x1, y1) in source pixels."""
        name = self.name("native", run, slot)
        x0, y0, h, w = self.tiles[name]
        return codecs.decode_lossless(self.file.blob(name), (h, w), self.compress), (x0, y0, x0 + w, y0 + h)

    @property
    def audio(self) -> np.ndarray:
        if self._audio is None:
            n = int(self.file["audio_len"])
            pcm = np.frombuffer(zlib.decompress(self.file.blob("audio")), "<i2") if n else np.zeros(0, "<i2")
            self._audio = pcm.astype(np.float32) / 32767.0
        return self._audio

    def close(self) -> None:
        self.file.close()


class _Store:
    """LRU of open cache files (one per process)."""

    def __init__(self, root: Path, capacity: int = 32):
        self.root, self.capacity = root, capacity
        self._open: OrderedDict[str, _Video] = OrderedDict()

    def get(self, crop_file: str) -> _Video:
        video = self._open.pop(crop_file, None) or _Video(self.root / crop_file)
        self._open[crop_file] = video
        while len(self._open) > self.capacity:
            self._open.popitem(last=False)[1].close()
        return video


class _CacheDataset(Dataset):
    """Shared parts: the store, the random generator per item, audio windows, tensor conversion."""

    def __init__(self, cache_dir: str | Path, spec: InputSpec, transform: Transform, margin: float,
                 train: bool):
        self.cache_dir, self.spec, self.transform = Path(cache_dir), spec, transform
        self.margin, self.train = margin, train
        self._store: _Store | None = None
        # (seed, epoch) in shared memory: persistent DataLoader workers see every set_epoch
        self._seed_epoch = torch.zeros(2, dtype=torch.int64).share_memory_()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}  # each worker opens its own files

    @property
    def seed(self) -> int:
        return int(self._seed_epoch[0])

    @property
    def epoch(self) -> int:
        return int(self._seed_epoch[1])

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Random crops and augmentations are a function of (seed, epoch, index): a run resumed in
        the middle of an epoch draws exactly what the uninterrupted run drew, whatever the workers.
        Written to shared memory, so workers kept alive across epochs (``persistent_workers``) see it."""
        self._seed_epoch[1] = epoch
        if seed is not None:
            self._seed_epoch[0] = seed

    @property
    def store(self) -> _Store:
        if self._store is None:  # (no cv2.setNumThreads here: in a forked worker it can deadlock)
            self._store = _Store(self.cache_dir)
        return self._store

    def _rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch (see :meth:`set_epoch`)."""
        seed, epoch = self._seed_epoch.tolist()
        return np.random.default_rng([seed, epoch, index])

    def _crops(self, video: _Video, run: int, slots: list[int], box: np.ndarray,
               rng: np.random.Generator, edit: Edit | None = None) -> list[np.ndarray]:
        """The frames' crops, transformed with one seed. ``face`` / ``context`` crops are stored cut and
        resized; ``native`` windows are placed once for all frames (a clip keeps a fixed camera)
        inside the stored tiles and cut from them. ``edit`` (a synthetic twin's) changes the crops
        before the transform, given the face box in crop pixels."""
        if self.spec.crop != "native":
            crops = [video.crop(self.spec.crop, run, s) for s in slots]
            window = crop_window(box, self.spec, (0, 0, 0, 0), margin=self.margin)
        else:
            tiles = [video.tile(run, s) for s in slots]
            common = (max(b[0] for _, b in tiles), max(b[1] for _, b in tiles),
                      min(b[2] for _, b in tiles), min(b[3] for _, b in tiles))
            window = crop_window(box, self.spec, common, margin=self.margin, train=self.train, rng=rng)
            crops = [cut_window(tile, bounds[:2], window) for tile, bounds in tiles]
        if edit is not None:
            crops = edit(crops, box_in_crop(box, window, crops[0].shape))
        return self.transform(crops, seed=int(rng.integers(2**63)))

    def _audio(self, sample: dict, video: _Video, slot: int, n_frames: int) -> None:
        spec = self.spec
        if video.has_audio:
            sample["audio"] = mel_window(video.audio, video.sample_rate, float(video.times[slot]), n_frames,
                                         video.fps, spec)
            sample["audio_mask"] = torch.tensor(1.0)
        else:
            sample["audio"] = torch.zeros(spec.n_mels, n_frames * spec.mel_per_frame)
            sample["audio_mask"] = torch.tensor(0.0)

    @staticmethod
    def _to_tensor(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


class Rows:
    """Index rows kept as columns: numbers in numpy arrays, strings as codes into a list of names.

    ``rows[i]`` gives back a dict with the fields the datasets use; ``len(rows)`` the row count.
    """

    INTS = ("frame_index", "run", "slot", "label")
    STRS = ("video_id", "method", "crop_file")

    def __init__(self, rows: Sequence[dict]):
        self.ints = {k: np.fromiter((r[k] for r in rows), np.int64, len(rows)) for k in self.INTS}
        self.boxes = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in rows], np.float32).reshape(-1, 4)
        self.names: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        for k in self.STRS:
            index: dict[str, int] = {}
            codes = (index.setdefault(r[k], len(index)) for r in rows)
            self.codes[k] = np.fromiter(codes, np.int32, len(rows))
            self.names[k] = list(index)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, i: int) -> dict:
        row = {k: int(v[i]) for k, v in self.ints.items()}
        row.update({k: self.names[k][self.codes[k][i]] for k in self.STRS})
        row.update(zip(("x1", "y1", "x2", "y2"), self.boxes[i].tolist()))
        return row

    def column(self, key: str) -> list:
        """One column as a list (``label`` -> ints, ``video_id`` -> strings)."""
        if key in self.ints:
            return self.ints[key].tolist()
        return [self.names[key][c] for c in self.codes[key]]


class FrameDataset(_CacheDataset):
    """One sample per stored frame: ``image`` 3×S×S uint8 (and a one-frame ``audio`` window if asked).

    Args:
        rows: index rows (:func:`utils.data.cache_io.load_index`), one item each.
        cache_dir: the cache they come from.
        spec: the model's input spec.
        transform: frames in, frames out (HxWx3 uint8), ending at ``spec.image_size`` square.
        margin: face-crop margin.
        train: random placement of ``native`` crops.
    """

    def __init__(self, rows: Sequence[dict], cache_dir: str | Path, spec: InputSpec, transform: Transform, *,
                 margin: float = 0.3, train: bool = False, synthesis: SynthesisConfig | None = None):
        super().__init__(cache_dir, spec, transform, margin, train)
        self.rows = Rows(rows)
        self.labels: list[int] = self.rows.column("label")
        self.video_ids: list[str] = self.rows.column("video_id")
        self.twins = Twins(synthesis, self.labels, self.video_ids, train)

    def __len__(self) -> int:
        return len(self.rows) + len(self.twins)

    def __getitem__(self, index: int) -> dict:
        i, synth, synth_rng = self.twins.resolve(index, self._seed_epoch.tolist())
        row = self.rows[i]
        video = self.store.get(row["crop_file"])
        sample = {"label": torch.tensor(row["label"], dtype=torch.long), "video_id": row["video_id"],
                  "method": row["method"], "frame_index": row["frame_index"]}
        if self.spec.audio:
            self._audio(sample, video, row["slot"], 1)
        edit = Twins.editor(synth, synth_rng, sample) if synth else None
        (image,) = self._crops(video, -1, [row["slot"]], self.rows.boxes[i], self._rng(i), edit)
        sample["image"] = self._to_tensor(image)
        return self.twins.mark(sample, index, synth) if synth else sample


class ClipDataset(_CacheDataset):
    """One sample per stored run: ``clip`` T×3×S×S of T consecutive frames of the video's face track.

    Training takes a random T-frame stretch of the run, evaluation the middle one. The crop window is
    fixed over the clip (cut around the mean box of its frames), so the clip shows the face's own
    motion, not detector jitter. With ``spec.audio`` the log-mel window of the same stretch is added.
    Rows that are not part of a run (``run`` -1) are ignored.
    """

    def __init__(self, rows: Sequence[dict], cache_dir: str | Path, spec: InputSpec, transform: Transform, *,
                 margin: float = 0.3, train: bool = False, synthesis: SynthesisConfig | None = None):
        super().__init__(cache_dir, spec, transform, margin, train)
        in_runs = [r for r in rows if r["run"] >= 0]
        self.rows = Rows(sorted(in_runs, key=lambda r: (r["video_id"], r["run"], r["frame_index"])))
        self.items = self._runs(spec.clip_len)  # (first row, length) of each usable run
        first = self.items[:, 0]
        self.labels: list[int] = self.rows.ints["label"][first].tolist()
        names = self.rows.names["video_id"]
        self.video_ids: list[str] = [names[c] for c in self.rows.codes["video_id"][first]]
        self.twins = Twins(synthesis, self.labels, self.video_ids, train)

    def _runs(self, clip_len: int) -> np.ndarray:
        """(first row, length) of every run of at least ``clip_len`` consecutive frames."""
        vid, run, frame = self.rows.codes["video_id"], self.rows.ints["run"], self.rows.ints["frame_index"]
        new = np.r_[True, (vid[1:] != vid[:-1]) | (run[1:] != run[:-1])] if len(vid) else np.zeros(0, bool)
        starts = np.flatnonzero(new)
        lengths = np.diff(np.r_[starts, len(vid)])
        gaps = np.r_[False, np.diff(frame) != 1] & ~new  # a frame missing inside a run
        ok = (lengths >= clip_len) & ~np.logical_or.reduceat(gaps, starts) if len(starts) else lengths > 0
        if len(starts) and not ok.any():
            raise ValueError(f"no stored run has {clip_len} consecutive frames (longest: {lengths.max()}): "
                             f"rebuild the cache with clip_frames >= {clip_len} "
                             "(extract_faces.py --clip-frames, or data.clip_frames)")
        return np.stack([starts[ok], lengths[ok]], axis=1).astype(np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.items) + len(self.twins)

    def _start(self, i: int, rng: np.random.Generator) -> int:
        """First row of item ``i``'s clip: a random stretch of its run when training, else the middle."""
        (first, length), t = self.items[i], self.spec.clip_len
        return int(first + (int(rng.integers(0, length - t + 1)) if self.train else (length - t) // 2))

    def __getitem__(self, index: int) -> dict:
        i, synth, synth_rng = self.twins.resolve(index, self._seed_epoch.tolist())
        t, rng = self.spec.clip_len, self._rng(i)
        start = self._start(i, rng)
        rows = [self.rows[k] for k in range(start, start + t)]
        video = self.store.get(rows[0]["crop_file"])
        slots = [r["slot"] for r in rows]
        sample = {"label": torch.tensor(rows[0]["label"], dtype=torch.long), "video_id": rows[0]["video_id"],
                  "method": rows[0]["method"], "frame_index": rows[0]["frame_index"]}
        if self.spec.audio:
            self._audio(sample, video, slots[0], t)
        edit = Twins.editor(synth, synth_rng, sample, self._other_audio(i, video, slots[0])) if synth else None
        frames = self._crops(video, rows[0]["run"], slots, self.rows.boxes[start:start + t].mean(axis=0), rng,
                             edit)
        key = "clip" if t > 1 else "image"
        sample[key] = torch.stack([self._to_tensor(f) for f in frames]) if t > 1 else self._to_tensor(frames[0])
        return self.twins.mark(sample, index, synth) if synth else sample

    def _other_audio(self, i: int, video: _Video, slot: int):
        """``other_audio(how, rng)`` for item ``i`` (see :class:`utils.data.synthesis.SynthItem`): the
        clip-length log-mel window of another stored run of the same video starting at least 0.3 s
        away (``"shift"``; None when there is none), or of another real video's clip (``"swap"``)."""
        codes, t = self.rows.codes["video_id"][self.items[:, 0]], self.spec.clip_len

        def window(video_: _Video, slot_: int) -> torch.Tensor:
            return mel_window(video_.audio, video_.sample_rate, float(video_.times[slot_]), t, video_.fps,
                              self.spec)

        def other(how: str, rng: np.random.Generator) -> torch.Tensor | None:
            if how == "shift":
                same = [self.rows.ints["slot"][self.items[k, 0]] for k in np.flatnonzero(codes == codes[i])]
                far = [s for s in same if abs(video.times[s] - video.times[slot]) >= 0.3]
                return window(video, int(rng.choice(far))) if far and video.has_audio else None
            reals = np.flatnonzero((codes != codes[i]) & (np.asarray(self.labels[:len(self.items)]) == 0))
            for k in rng.permutation(reals)[:16]:
                first = self.rows[int(self.items[k, 0])]
                donor = self.store.get(first["crop_file"])
                if donor.has_audio:
                    return window(donor, first["slot"])
            raise ValueError(f"no other real video with audio in this split to take audio from for "
                             f"{self.video_ids[i]}")
        return other


def _limit_frames(rows: list[dict], n: int) -> list[dict]:
    """At most ``n`` frames per video, spread evenly over the stored ones."""
    per_video: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        per_video[r["video_id"]].append(r)
    out = []
    for vid_rows in per_video.values():
        vid_rows.sort(key=lambda r: r["frame_index"])
        pick = np.unique(np.linspace(0, len(vid_rows) - 1, min(n, len(vid_rows))).round().astype(int))
        out += [vid_rows[k] for k in pick]
    return out


def _rows_of(cache_dir: str | Path, records: Sequence[VideoRecord], clips: bool) -> list[dict]:
    """Index rows of ``records``' videos (spread frames, or frames of runs for clips), with the label,
    method and split of the records: what the adapter says now, not what it said when the cache was
    built (a class map or another validation carve changes labels and splits, not pixels)."""
    by_id = {r.video_id: r for r in records}
    rows = load_index(cache_dir, where=lambda r: r["video_id"] in by_id and (r["run"] >= 0) == clips)
    for row in rows:
        rec = by_id[row["video_id"]]
        row.update(label=rec.label, method=rec.method, split=rec.split)
    return rows


def build_dataset(cache_dir: str | Path, records: Sequence[VideoRecord], spec: InputSpec, data_cfg: DataConfig,
                  train: bool, transform: Transform | None = None, synthesize: bool = True,
                  max_frames: int = 0) -> Dataset:
    """The dataset a model needs over the videos of ``records`` (one split, or one phase of it).

    ``spec.clip_len > 1`` gives a :class:`ClipDataset` over the stored runs, otherwise a
    :class:`FrameDataset` over the evenly spread frames (at most ``data_cfg.frames_per_video_train``
    per video when training, at most ``max_frames`` otherwise, when > 0). The transform is ``build_transforms(spec, train and data_cfg.augment,
    data_cfg.clahe)`` unless one is given. When ``data_cfg.synthesis`` covers the records' split (and
    ``synthesize``), synthetic twins of its real videos are appended (:mod:`utils.data.synthesis`).

    Raises:
        CacheError: the cache does not hold the crops ``spec`` asks for (the policy, or its size,
            margin or context scale; see ``cache.json``).
        ValueError: the cache holds no rows for these videos.
    """
    clips = spec.clip_len > 1
    check_serves(cache_dir, spec, clips, data_cfg.margin)
    synthesis = data_cfg.synthesis if synthesize and synthesis_applies(data_cfg.synthesis, records) else None
    if synthesis is not None:
        check_synthesis(synthesis, spec, data_cfg.classes)
        records = keep_for_synthesis(synthesis, list(records))
    rows = _rows_of(cache_dir, records, clips)
    if not rows:
        what = "clips" if clips else "frames"
        splits = sorted({r.split for r in records})
        raise ValueError(f"the cache {cache_dir} has no {what} for the {len(records)} {'/'.join(splits)} "
                         "video(s) asked for: check the split settings and, for clips, the cache's "
                         "clips_per_video, or rebuild the cache")
    if transform is None:
        transform = build_transforms(spec, train=train and data_cfg.augment, clahe=data_cfg.clahe)
    kwargs = dict(margin=data_cfg.margin, train=train, synthesis=synthesis)
    if clips:
        return ClipDataset(rows, cache_dir, spec, transform, **kwargs)
    limit = data_cfg.frames_per_video_train if train else max_frames
    if limit > 0:
        rows = _limit_frames(rows, limit)
    return FrameDataset(rows, cache_dir, spec, transform, **kwargs)
