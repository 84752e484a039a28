"""Data for a run: the index, the face-crop cache that covers it, datasets, and split predictions.

Shared by the stage runner (training and its end-of-stage evaluation), checkpoint evaluation and
cross-validation, so that every one of them sees a dataset the same way.
"""
from __future__ import annotations

import logging
from pathlib import Path

from accelerate import Accelerator
from torch.utils.data import DataLoader

from utils.core.checkpoint import unwrap
from utils.core.config import Config
from utils.core.errors import UsageError
from utils.core.model import InputSpec
from utils.core.registry import get_dataset
from utils.core.signals import StopRequest
from utils.data.cache import BuildOptions, build_cache, cache_is_complete, cache_location
from utils.data.datasets import build_dataset
from utils.data.index import build_index, data_root, sample_dir, split_records
from utils.data.records import VideoRecord
from utils.data.sample import make_sample
from utils.data.synthesis.plan import keep_for_synthesis
from utils.data.sources import select_sources
from utils.data.workers import loader_workers
from utils.engine.inference import predict_loader
from utils.engine.predictions import FramePredictions

logger = logging.getLogger(__name__)


def ensure_sample_data(acc: Accelerator, dataset: str) -> None:
    """Generate the bundled sample data of ``dataset`` on first use (main process; the others wait)."""
    if acc.is_main_process:
        make_sample(sample_dir(), dataset)
    acc.wait_for_everyone()


def index_data(cfg: Config, acc: Accelerator) -> list[VideoRecord]:
    """The records of the configured dataset (generating its sample data on first use)."""
    root, is_sample = data_root(cfg.data)
    if is_sample:
        ensure_sample_data(acc, cfg.data.dataset)
    return build_index(cfg.data, root, seed=cfg.trainer.seed)


def prepare_data(cfg: Config, acc: Accelerator, records: list[VideoRecord] | None = None,
                 spec: InputSpec | None = None) -> tuple[Path, list[VideoRecord]]:
    """Index the dataset (unless ``records`` are given), keep the configured sources, and make sure its
    face-crop cache covers them; returns (cache dir, records).

    With the model's ``spec``, a model the dataset cannot feed is refused before the cache is built.
    """
    records = index_data(cfg, acc) if records is None else records
    records = select_sources(records, cfg.data.train_sources, cfg.data.eval_sources)
    root = data_root(cfg.data)[0]
    adapter = get_dataset(cfg.data.dataset)
    if spec is not None:
        adapter.check_input(spec, records)
    opts = BuildOptions.from_data(cfg.data)
    cache = cache_location(cfg.data, root, opts)
    if not cache_is_complete(cache, records):
        if not cfg.data.build_cache:
            d = cfg.data
            raise UsageError(
                f"the face-crop cache {cache} does not cover {d.dataset} at {root}. Build it with:\n"
                f"  python launch/extract_faces.py --dataset {d.dataset} --root {root} --cache {cache}"
                f" --frames {d.frames_per_video} --clips {d.clips_per_video} --clip-frames {d.clip_frames}"
                f"{'' if d.cache_compress else ' --no-compress'}\nor set data.build_cache=true")
        logger.info("building the face-crop cache %s (%d videos)", cache, len(records))
        with StopRequest() as stop:
            build_cache(records, cache, opts, workers=max(1, cfg.data.num_workers // acc.num_processes),
                        reuse_original_boxes=adapter.reuse_original_boxes,
                        face_detector=adapter.face_detector(adapter.options(cfg.data), cfg.data.margin),
                        rank=acc.process_index, world_size=acc.num_processes, stop=stop)
        acc.wait_for_everyone()
    return cache, records


def stage_datasets(cfg: Config, spec, cache: Path, records: list[VideoRecord]):
    """(train phases, validation set). With ``trainer.epochs_per_chunk`` the adapter splits the training
    videos into phases (DFDC: one per chunk), each built lazily when the trainer reaches it."""
    def train_set(part: list[VideoRecord]):
        return lambda: build_dataset(cache, part, spec, cfg.data, train=True)

    train = split_records(records, "train")
    if cfg.trainer.epochs_per_chunk:
        adapter = get_dataset(cfg.data.dataset)
        phases = [(name, train_set(part)) for name, part in adapter.phases(train, adapter.options(cfg.data))]
    else:
        phases = [("train", train_set(train))]
    return phases, build_dataset(cache, split_records(records, "val"), spec, cfg.data, train=False,
                                 max_frames=cfg.data.frames_per_video_val)


def missing_videos(records: list[VideoRecord], preds: FramePredictions, failures: list[dict]) -> list[dict]:
    """Videos of ``records`` with no prediction row, with the reason the cache recorded (if any)."""
    seen, why = set(preds.video_ids.tolist()), {f["video_id"]: f.get("reason", "") for f in failures}
    return [{"video_id": r.video_id, "label": r.label, "method": r.method,
             "reason": why.get(r.video_id) or "no frames",
             **({"chunk": str(r.chunk)} if r.chunk is not None else {})}
            for r in records if r.video_id not in seen]


def predict_split(model, cache: Path, split: str, cfg: Config, acc: Accelerator, records: list[VideoRecord],
                  failures: list[dict]) -> FramePredictions:
    """Frame predictions of ``model`` on one split of a cache, with the frameless videos listed."""
    part = keep_for_synthesis(cfg.data.synthesis, split_records(records, split))  # real_only drops fakes
    ds = build_dataset(cache, part, unwrap(model).input_spec, cfg.data, train=False)
    bs = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    loader = acc.prepare(DataLoader(ds, batch_size=bs, shuffle=False,
                                    num_workers=loader_workers(cfg.data.num_workers),
                                    pin_memory=acc.device.type == "cuda"))
    preds = predict_loader(model, loader, acc, label_names=tuple(cfg.data.classes))
    preds.missing = missing_videos(part, preds, failures)
    chunk = {r.video_id: r.chunk for r in part if r.chunk is not None}
    if chunk:
        preds.attach("chunk", chunk)
    return preds
