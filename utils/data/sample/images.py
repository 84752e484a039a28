"""Sample image datasets: a 3-class image folder and a multi-source image set, face crops as JPEGs.

Both are written lazily, the first time a run needs their sample root, so ``make demo`` never pays
for them. The photos are renders of the sample identities (:mod:`utils.data.sample.render`) framed
as face crops; fakes are made by the techniques their names stand for:

* ``imagefolder`` -- ``{train,val,test}/{real,fake,aifake}/*.jpg``, 3 : 3 : 1 (the imbalance of the
  image set this toolkit's users started from): real photos; face swaps (``Deepfakes`` / ``FaceSwap``
  of :mod:`utils.data.sample.manipulations` pasting a donor's face); and *generated* images, made by
  whole-image synthesis (:mod:`utils.data.sample.synthesis`) -- no photo under them at all. Every
  split has its own people (real, target, donor and generated identities alike), so ``test/`` is held
  out from what training saw and from what chose the best epoch (``val/``).
* ``manifest`` -- ``real/wiki/``, ``fake/{inpainting,faceswap,text2img}/`` and ``manifest.csv``
  (path, label, source, group; no split: carved by group). Several photos per person; an inpainted
  or face-swapped image keeps the base photo's file name, so its group is the base photo's person.

No file-level shortcut: every image of every class is 128x128, JPEG, encoded by the same encoder at
the same quality (so the same quantisation tables), and the generated images' texture strength is
set so their byte sizes follow those of the real photos of the same split.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from utils.data.sample.actors import Identity, random_identity, random_shot
from utils.data.sample.geometry import ellipse_drawer, soft_mask
from utils.data.sample.layouts import FACE_NAMES, rng_for
from utils.data.sample.manipulations import METHODS
from utils.data.sample.render import Footage, render
from utils.data.sample.synthesis import Decoder, inpaint, jpeg_bytes, regrain, synthesize_to_size, to_size

IMAGE_SETS = ("imagefolder", "manifest", "deepfakebench")   # the image samples, one folder each
SIZE, QUALITY = 128, 90
SWAPS = ("Deepfakes", "FaceSwap")
THREE_CLASS = {"train": (40, 40, 20), "val": (20, 20, 10), "test": (20, 20, 10)}   # people per class
SPLIT_PREFIX = {"train": "t", "val": "v", "test": "h"}   # of the people's names: no name in two splits
PHOTOS = {"real": 3, "fake": 3, "aifake": 2}                  # photos per person: 3 : 3 : 1 images
MULTI_SOURCE_PEOPLE, MULTI_SOURCE_GENERATED = 40, 20
PHOTOS_PER_WIKI_PERSON = 3


def person(rng: np.random.Generator, name: str) -> Identity:
    """A new identity for the image samples."""
    return random_identity(rng, name, FACE_NAMES[int(rng.integers(len(FACE_NAMES)))])


def portrait(rng: np.random.Generator, identity: Identity) -> Footage:
    """One face-crop photo (a 1-frame render) of ``identity``: the face fills most of the frame; framing,
    light, background and sensor noise are drawn anew for every photo."""
    shot = random_shot(rng, identity, (SIZE, SIZE), 1, 25.0)
    height = max(SIZE * float(rng.uniform(0.6, 0.72)), shot.face_height if not shot.composite else 0.0)
    return render(dataclasses.replace(shot, face_height=height, centre=(float(rng.uniform(0.46, 0.54)),
                                                                        float(rng.uniform(0.45, 0.52)))))


def size_targets(rng: np.random.Generator, sizes: list[int], count: int) -> list[int]:
    """``count`` byte-size targets drawn (with replacement) from the sizes of the real photos."""
    return [int(sizes[i]) for i in rng.integers(len(sizes), size=count)]


def by_rank(natural: list[int], targets: list[int]) -> list[int]:
    """Targets handed out by rank: the smallest file as made gets the smallest target, and so on.

    Each file then needs the least adjustment, and the sizes of the class end up distributed exactly
    as the targets are (those of the real photos).
    """
    out = [0] * len(natural)
    for rank, i in enumerate(np.argsort(natural, kind="stable")):
        out[int(i)] = sorted(targets)[rank]
    return out


class Writer:
    """Writes JPEGs under a root and remembers each file's class, source, group and size."""

    def __init__(self, root: Path):
        self.root, self.files = root, {}

    def write(self, rel: str, data: bytes, label: str, source: str, group: str) -> int:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[rel] = {"label": label, "source": source, "group": group, "bytes": len(data)}
        return len(data)


def _people(rng: np.random.Generator, prefix: str, count: int, photos: int) -> list[tuple[str, list]]:
    """``count`` people, each with ``photos`` separate renders (framing, light, background, noise)."""
    out = []
    for k in range(count):
        name = f"{prefix}{k:04d}"
        identity = person(rng, name)
        out.append((name, [portrait(rng, identity) for _ in range(photos)]))
    return out


def _swap(rng: np.random.Generator, target: Footage, donor: Footage, k: int) -> np.ndarray:
    return METHODS[SWAPS[k % len(SWAPS)]](target, donor, rng)[0]


def _reals(w: Writer, folder: str, people: list, label: str, source: str) -> list[int]:
    """Write the real photos as rendered; return their byte sizes (the targets of every other class)."""
    return [w.write(f"{folder}/{name}_frame{j}.jpg", jpeg_bytes(f.frames[0], QUALITY), label, source, name)
            for name, renders in people for j, f in enumerate(renders)]


def _post(fake: np.ndarray, photo: Footage, seed: int):
    """The face swap's post-processing at a strength: grain (positive) or softening (negative)."""
    return lambda strength: regrain(fake, photo.frames[0], strength, seed)


def _swaps(w: Writer, rng: np.random.Generator, folder: str, people: list, donors: list[Footage],
           targets: list[int], label: str, source: str) -> None:
    """A donor's face pasted into each photo, re-grained so that its JPEG meets a byte-size target."""
    made = [(f"{folder}/{name}_frame{j}.jpg", _post(_swap(rng, photo, donors[k], j + k), photo,
                                                     int(rng.integers(2**31))), name)
            for k, (name, photos) in enumerate(people) for j, photo in enumerate(photos)]
    natural = [len(jpeg_bytes(post(0.0), QUALITY)) for _, post, _ in made]
    for (rel, post, name), target in zip(made, by_rank(natural, [targets.pop() for _ in made])):
        w.write(rel, to_size(post, target, QUALITY, 8.0, -2.0), label, source, name)


def _generated(w: Writer, rng: np.random.Generator, folder: str, prefix: str, count: int, photos: int,
               targets: list[int], label: str, source: str) -> None:
    """Whole-image synthesis: one decoder (a generator's weights), new people as latents, texture set
    so each JPEG meets its size target."""
    decoder = Decoder(rng)
    for name, layouts in _people(rng, prefix, count, photos):
        for j, layout in enumerate(layouts):
            seed = int(rng.integers(2**31))
            data = synthesize_to_size(decoder, layout.frames[0], targets.pop(), QUALITY, seed)
            w.write(f"{folder}/{name}_frame{j}.jpg", data, label, source, name)


def write_three_class(root: Path, seed: int) -> dict:
    """``{train,val,test}/{real,fake,aifake}/*.jpg`` (see the module doc); returns the file table.

    Each split draws from its own random stream, so adding a split leaves the others' files unchanged."""
    w = Writer(root)
    for split, (n_real, n_fake, n_gen) in THREE_CLASS.items():
        rng, pre = rng_for(seed, "imagefolder", split), SPLIT_PREFIX[split]
        sizes = _reals(w, f"{split}/real", _people(rng, f"{pre}r", n_real, PHOTOS["real"]), "real", "")
        donors = [p for _, ps in _people(rng, f"{pre}d", n_fake, 1) for p in ps]
        targets = size_targets(rng, sizes, n_fake * PHOTOS["fake"] + n_gen * PHOTOS["aifake"])
        _swaps(w, rng, f"{split}/fake", _people(rng, f"{pre}f", n_fake, PHOTOS["fake"]), donors, targets,
               "fake", "")
        _generated(w, rng, f"{split}/aifake", f"{pre}g", n_gen, PHOTOS["aifake"], targets, "aifake", "")
    return w.files


def _mouth_region(photo: Footage) -> np.ndarray:
    """A soft mask over the lower face (mouth and chin): the region an inpainting model re-draws."""
    points = photo.landmarks[0]
    centre = (points[3] + points[4]) / 2
    width = float(np.linalg.norm(points[4] - points[3]))
    return soft_mask((SIZE, SIZE), np.zeros(2), ellipse_drawer(centre, (0.9 * width, 0.7 * width), 0.0),
                     0.15 * width)


def _derived(w: Writer, rng: np.random.Generator, people: list, donors: list[Footage],
             targets: list[int]) -> None:
    """Per person, an inpainted and a face-swapped version of one wiki photo, under its file name."""
    decoder = Decoder(rng)
    painted, swapped = [], []
    for k, (name, photos) in enumerate(people):
        j = k % PHOTOS_PER_WIKI_PERSON
        base, rel = photos[j], f"{name}_frame{j}.jpg"       # the photo written as real/wiki/<rel>
        mask, seed = _mouth_region(base), int(rng.integers(2**31))
        painted.append((f"fake/inpainting/{rel}", lambda noise, b=base, m=mask, s=seed:
                        inpaint(decoder, b.frames[0], m, noise, s), name))
        swapped.append((f"fake/faceswap/{rel}", _post(_swap(rng, base, donors[k], k), base,
                                                       int(rng.integers(2**31))), name))
    for made, source, (low, high), start in ((painted, "inpainting", (0.0, 0.2), 0.02),
                                             (swapped, "faceswap", (-2.0, 8.0), 0.0)):
        natural = [len(jpeg_bytes(make(start), QUALITY)) for _, make, _ in made]
        for (rel, make, name), target in zip(made, by_rank(natural, [targets.pop() for _ in made])):
            w.write(rel, to_size(make, target, QUALITY, high, low), "fake", source, name)


def write_multi_source(root: Path, seed: int) -> dict:
    """``real/wiki``, ``fake/{inpainting,faceswap,text2img}`` and ``manifest.csv`` (see the module doc)."""
    w = Writer(root)
    rng = rng_for(seed, "manifest")
    people = _people(rng, "w", MULTI_SOURCE_PEOPLE, PHOTOS_PER_WIKI_PERSON)
    donors = [p for _, ps in _people(rng, "d", MULTI_SOURCE_PEOPLE, 1) for p in ps]
    sizes = _reals(w, "real/wiki", people, "real", "wiki")
    targets = size_targets(rng, sizes, 2 * MULTI_SOURCE_PEOPLE + 2 * MULTI_SOURCE_GENERATED)
    _derived(w, rng, people, donors, targets)
    _generated(w, rng, "fake/text2img", "t", MULTI_SOURCE_GENERATED, 2, targets, "fake", "text2img")
    lines = ["path,label,source,group"] + [f"{rel},{f['label']},{f['source']},{f['group']}"
                                           for rel, f in sorted(w.files.items())]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return w.files


def summary(files: dict) -> str:
    """The per-file table as JSON (written beside the images)."""
    return json.dumps(dict(sorted(files.items())), indent=1)
