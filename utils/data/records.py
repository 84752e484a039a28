"""The video record every dataset adapter produces: the contract between adapters and the rest."""
from __future__ import annotations

from dataclasses import asdict, dataclass

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    ``group`` is what must never be split across train/val/test: the identities the video shows
    (FF++ id pair, Celeb-DF identities, DFDC ``original``). ``video_id`` is unique within the dataset
    and is what video-level metrics group by (FF++ methods share file names, so it includes the method).
    """

    video_id: str
    path: str
    label: int                 # 0 = real, 1 = fake
    dataset: str               # ffpp | celebdf | dfdc
    method: str                # FF++ method or "original"; Celeb-DF source folder; DFDC "real"/"fake"
    group: str
    split: str                 # train | val | test
    chunk: int | None = None   # DFDC chunk number
    original: str | None = None  # video_id of the real video a fake was made from, when known

    def to_dict(self) -> dict:
        return asdict(self)
