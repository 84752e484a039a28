"""What goes where: the FF++, Celeb-DF v2 and DFDC trees of the sample data (see docs/DATASETS.md).

Each planner draws identities and shots from a seeded generator and returns a :class:`Plan`: jobs (one
group of videos that share rendered footage) and the index files of the layout (split lists, test list,
metadata). Nothing is rendered here, so planning is instant and the same for a seed on every machine.
"""
from __future__ import annotations

import json
import string
import zlib
from dataclasses import dataclass, field

import numpy as np

from utils.data.sample.actors import Shot, random_identity, random_shot
from utils.data.sample.manipulations import DFDC_METHODS, FFPP_METHODS

FACE_NAMES = ("carphone", "astronaut")


@dataclass(frozen=True)
class Scale:
    """How much data a scale writes."""

    ffpp_pairs: tuple[int, int, int]          # train / val / test pairs
    ffpp_frames: int
    celebdf_ids: tuple[int, int]              # train / test celebrities
    celebdf_videos: int                       # Celeb-real videos per celebrity
    celebdf_youtube: tuple[int, int]          # train / test YouTube-real videos
    celebdf_fakes: int                        # synthesis videos per Celeb-real video (< celebrities per side)
    celebdf_frames: int
    dfdc_reals: tuple[int, ...]               # real videos per chunk
    dfdc_fakes: int                           # fakes per real video
    dfdc_frames: int
    celebdf_cluster: int = 0                  # >0: swap sources come from the same group of this many
                                              # celebrities (as real swaps pair look-alikes); 0: any


SCALES: dict[str, Scale] = {
    # Every split of every dataset holds both classes after the adapters' rules (Celeb-DF's identity-grouped
    # validation carve included); make_sample_data refuses a scale for which that is not so (splits.py).
    # tiny: for tests of the generator itself (determinism, idempotence); seconds to write.
    "tiny": Scale((1, 1, 1), 12, (4, 3), 1, (1, 1), 2, 12, (1, 1, 1), 2, 12),
    # test: what the test suite trains on (a third fewer videos than small, so `make test` stays fast):
    # per dataset >= 24 test videos with >= 8 reals and >= 8 validation videos with >= 3 reals.
    "test": Scale((6, 2, 4), 32, (8, 4), 2, (2, 2), 2, 32, (2, 2, 2) + (1,) * 7 + (3, 8), 3, 32),
    # small (the demo's and the default): validation splits large enough to select on — per dataset
    # >= 12 real and >= 12 fake validation videos under the demo recipe (FF++ 6 pairs; Celeb-DF one swap
    # group of 4 celebrities x 3 videos carved out with data.val_fraction 0.25; DFDC's validation chunk 10
    # holds 12 reals) — and more training identities (FF++ 8 pairs, 12 training celebrities, 2 reals in
    # every DFDC training chunk), so that memorising identities pays less. 12 DFDC chunks so the default
    # curriculum's chunk lists (train 0-9, val 10, test 11) exist; 3 fakes per DFDC real (not DFDC's ~5).
    "small": Scale((8, 6, 4), 32, (12, 4), 3, (4, 2), 1, 32, (2,) * 10 + (12, 8), 3, 32, celebdf_cluster=4),
    "medium": Scale((24, 6, 6), 64, (8, 4), 3, (6, 4), 3, 64, (3,) * 10 + (4, 8), 5, 64),
}
FFPP_SIZE, FFPP_FPS = (256, 192), 25.0
CELEBDF_SIZE, CELEBDF_FPS = (288, 176), 30.0
DFDC_SIZE, DFDC_PORTRAIT, DFDC_FPS = (320, 180), (180, 320), 30.0


@dataclass(frozen=True)
class Output:
    """One video file to write: which footage it shows and how it was faked (if it was)."""

    path: str                  # relative to the sample root
    target: str                # key of the shot whose footage it shows
    label: int                 # 0 = real, 1 = fake (our convention; files on disk use each dataset's own)
    method: str                # "real", the method name, or an audio-only method
    manipulation: str = ""     # key of manipulations.METHODS; "" leaves the pixels untouched
    source: str = ""           # key of the shot whose face / expression is used
    audio: str = "none"        # none | own | shift | swap
    audio_shift: float = 0.0   # seconds, for audio == "shift"
    audio_source: str = ""     # key of the shot whose voice is swapped in
    original: str = ""         # path of the real video a fake was made from


@dataclass(frozen=True)
class Job:
    """Videos written together because they share rendered footage (a worker renders each shot once)."""

    shots: tuple[tuple[str, Shot], ...]
    outputs: tuple[Output, ...]


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)   # index files: path -> text


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator for one named part of the data, stable across processes and Python versions."""
    return np.random.default_rng([seed, *(zlib.crc32(key.encode()) for key in keys)])


def _faces(rng: np.random.Generator, count: int) -> list[str]:
    """Source faces for ``count`` identities, balanced between the two real faces, in random order."""
    return [FACE_NAMES[i] for i in rng.permutation(np.arange(count) % len(FACE_NAMES))]


def plan_ffpp(seed: int, scale: Scale) -> Plan:
    """FF++: youtube originals NNN.mp4, four methods' <target>_<source>.mp4, and pair splits."""
    rng = rng_for(seed, "ffpp")
    pairs_total = sum(scale.ffpp_pairs)
    ids = [f"{i:03d}" for i in rng.choice(1000, 2 * pairs_total, replace=False)]
    faces = _faces(rng, len(ids))
    shots = {i: random_shot(rng, random_identity(rng, f"ffpp-{i}", face), FFPP_SIZE, scale.ffpp_frames,
                            FFPP_FPS) for i, face in zip(ids, faces)}
    plan = Plan()
    real = "ffpp/original_sequences/youtube/c23/videos/{}.mp4"
    fake = "ffpp/manipulated_sequences/{}/c23/videos/{}_{}.mp4"
    splits, start = {}, 0
    for split, count in zip(("train", "val", "test"), scale.ffpp_pairs):
        splits[split] = [[ids[2 * k], ids[2 * k + 1]] for k in range(start, start + count)]
        start += count
    for split, pairs in splits.items():
        plan.files[f"ffpp/splits/{split}.json"] = json.dumps(pairs)
        for a, b in pairs:
            outputs = [Output(real.format(i), i, 0, "real") for i in (a, b)]
            for method in FFPP_METHODS:
                for t, s in ((a, b), (b, a)):
                    outputs.append(Output(fake.format(method, t, s), t, 1, method, manipulation=method,
                                          source=s, original=real.format(t)))
            plan.jobs.append(Job(((a, shots[a]), (b, shots[b])), tuple(outputs)))
    return plan


def plan_celebdf(seed: int, scale: Scale) -> Plan:
    """Celeb-DF v2: Celeb-real, YouTube-real, Celeb-synthesis, and the test list (1 = real, 0 = fake).

    The test list holds whole celebrities (their real videos and every fake among them), so no
    identity is on both sides of the split.
    """
    rng = rng_for(seed, "celebdf")
    n_ids = sum(scale.celebdf_ids)
    ids = [int(i) for i in rng.choice(62, n_ids, replace=False)]
    n_yt = sum(scale.celebdf_youtube)
    faces = _faces(rng, n_ids + n_yt)
    people = {i: random_identity(rng, f"celebdf-id{i}", face) for i, face in zip(ids, faces)}
    test_ids = set(ids[scale.celebdf_ids[0]:])
    plan, tested = Plan(), []
    shots = {f"id{i}_{v:04d}": random_shot(rng, people[i], CELEBDF_SIZE, scale.celebdf_frames, CELEBDF_FPS)
             for i in ids for v in range(scale.celebdf_videos)}
    for in_test in (False, True):       # one job per side of the split: each shot is rendered once
        members = [key for key in shots if (int(key[2:].split("_")[0]) in test_ids) == in_test]
        outputs = []
        for key in members:
            target = int(key[2:].split("_")[0])
            group = [i for i in ids if (i in test_ids) == in_test and i != target
                     and (not scale.celebdf_cluster or _cluster(ids, i, scale) == _cluster(ids, target, scale))]
            path = f"celebdf/Celeb-real/{key}.mp4"
            outputs.append(Output(path, key, 0, "Celeb-real"))
            for s in rng.choice(group, min(scale.celebdf_fakes, len(group)), replace=False):
                source = f"id{s}_{int(rng.integers(scale.celebdf_videos)):04d}"
                name = f"celebdf/Celeb-synthesis/id{target}_id{s}_{key.split('_')[1]}.mp4"
                outputs.append(Output(name, key, 1, "Celeb-synthesis", manipulation="synthesis",
                                      source=source, original=path))
        plan.jobs.append(Job(tuple((key, shots[key]) for key in members), tuple(outputs)))
        if in_test:
            tested += [(o.path, o.label) for o in outputs]
    youtube = [f"{int(i):05d}" for i in rng.choice(100000, n_yt, replace=False)]
    for k, (key, face) in enumerate(zip(youtube, faces[n_ids:])):
        shot = random_shot(rng, random_identity(rng, f"celebdf-yt{key}", face), CELEBDF_SIZE,
                           scale.celebdf_frames, CELEBDF_FPS)
        path = f"celebdf/YouTube-real/{key}.mp4"
        plan.jobs.append(Job(((key, shot),), (Output(path, key, 0, "YouTube-real"),)))
        if k >= scale.celebdf_youtube[0]:
            tested.append((path, 0))
    lines = [f"{1 - label} {path.removeprefix('celebdf/')}" for path, label in sorted(tested)]
    plan.files["celebdf/List_of_testing_videos.txt"] = "\n".join(lines) + "\n"
    return plan


def _cluster(ids: list[int], identity: int, scale: Scale) -> int:
    """The swap group of a celebrity: consecutive runs of ``celebdf_cluster`` in draw order (per side)."""
    return ids.index(identity) // scale.celebdf_cluster


def _dfdc_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(list(string.ascii_lowercase), 10)) + ".mp4"
        if name not in taken:
            taken.add(name)
            return name


def _draw_method(rng: np.random.Generator) -> str:
    names = list(DFDC_METHODS)
    weights = np.array([weight for _, weight in DFDC_METHODS.values()])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def dfdc_chunk_dir(chunk: int) -> str:
    """Folder of a chunk. Chunk 0 keeps the extra nesting level the real download can have."""
    return "dfdc/dfdc_train_part_00/dfdc_train_part_0" if chunk == 0 else f"dfdc/dfdc_train_part_{chunk}"


def plan_dfdc(seed: int, scale: Scale) -> Plan:
    """DFDC: chunks of mp4 files with audio and a metadata.json each; ``dfdc_fakes`` fakes per real, mixed methods.

    Every chunk holds exactly one audio-only fake, made from its first real: a shifted voice in even
    chunks, a swapped voice in odd ones (in the real DFDC such fakes are a small share; here a visual
    model sees one per chunk that it cannot detect). The last real of the last chunk is portrait.
    """
    rng = rng_for(seed, "dfdc")
    plan, taken = Plan(), set()
    for chunk, n_real in enumerate(scale.dfdc_reals):
        folder, metadata = dfdc_chunk_dir(chunk), {}
        n_actors = max(n_real, 2)          # fakes need a second person: hire an extra actor when alone
        faces = _faces(rng, n_actors)
        shots = {}
        for k in range(n_actors):
            portrait = chunk == len(scale.dfdc_reals) - 1 and k == n_real - 1
            shots[f"c{chunk}a{k}"] = random_shot(rng, random_identity(rng, f"dfdc-{chunk}-{k}", faces[k]),
                                                 DFDC_PORTRAIT if portrait else DFDC_SIZE, scale.dfdc_frames,
                                                 DFDC_FPS)
        outputs = []
        for k in range(n_real):
            key = f"c{chunk}a{k}"
            real = _dfdc_name(rng, taken)
            metadata[real] = {"label": "REAL", "split": "train"}
            outputs.append(Output(f"{folder}/{real}", key, 0, "real", audio="own"))
            others = [o for o in shots if o != key and shots[o].size == shots[key].size]
            others = others or [o for o in shots if o != key]
            for f in range(scale.dfdc_fakes):
                name = _dfdc_name(rng, taken)
                metadata[name] = {"label": "FAKE", "split": "train", "original": real}
                other = others[int(rng.integers(len(others)))]
                common = {"path": f"{folder}/{name}", "target": key, "label": 1,
                          "original": f"{folder}/{real}"}
                # The first fake of each chunk's first real is audio-only: voice shifted (even chunks) or swapped (odd).
                if k == 0 and f == 0 and chunk % 2 == 0:
                    shift = float(rng.choice([-1, 1]) * rng.uniform(0.35, 0.7))
                    outputs.append(Output(**common, method="audio_shift", audio="shift", audio_shift=shift))
                elif k == 0 and f == 0:
                    outputs.append(Output(**common, method="audio_swap", audio="swap", audio_source=other))
                else:
                    method = _draw_method(rng)
                    outputs.append(Output(**common, method=method, manipulation=method, source=other,
                                          audio="own"))
        plan.jobs.append(Job(tuple(shots.items()), tuple(outputs)))   # one job per chunk
        plan.files[f"{folder}/metadata.json"] = json.dumps(metadata, indent=None, sort_keys=True)
    return plan


PLANNERS = {"ffpp": plan_ffpp, "celebdf": plan_celebdf, "dfdc": plan_dfdc}
