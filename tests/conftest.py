"""Shared fixtures and how the suite runs: offline environment, the bundled sample data, the face-crop
caches the stage tests train on, the image samples, and the spread over pytest-xdist workers
(tests/helpers/scheduling.py).

Every expensive setup is paid once per session: the session fixtures below are built in a folder all
xdist workers of the session share, under a file lock (the first worker to need one builds it, any
other waits and reuses it), and are read-only afterwards. ``make test`` runs two workers
(``-n 2 --dist loadgroup``); plain ``pytest`` runs in one process with the same fixtures.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

# offline and quiet everywhere, subprocesses included
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKER = os.environ.get("PYTEST_XDIST_WORKER")   # gw0, gw1, ... under pytest-xdist; None without it
if WORKER:
    # one worker per core: one intra-op thread each (read by torch on import), and idle OpenMP threads
    # sleep instead of spinning, so a test that asks for two threads does not stall the other worker
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
    if WORKER:
        torch.set_num_threads(1)
except Exception:  # pragma: no cover
    HAS_CUDA = False

pytest_plugins = ("tests.helpers.profiling",)     # --profile-json PATH (make test-profile)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.hookimpl(optionalhook=True)     # a pytest-xdist hook: how the tests are spread over the workers
def pytest_xdist_make_scheduler(config, log):
    from tests.helpers.scheduling import make_scheduler
    return make_scheduler(config, log)


# ------------------------------------------------------------------------------------ shared folders

def shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this session sees (the parent of the workers' own temporary roots);
    without xdist, the session's temporary root."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if WORKER else base


@contextlib.contextmanager
def built_once(folder: Path, name: str):
    """One process at a time in the body: the first builds, the others wait, then find it built."""
    from filelock import FileLock
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f".{name}.lock")):
        yield folder / name


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of small-tensor tests (``pytest.mark.usefixtures("one_thread")``):
    on a shared 2-core machine, thread oversubscription stalls them."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The bundled sample datasets at ``test`` scale (seed 0), generated once per test session.

    ``DEEPFAKE_SAMPLE_DIR`` points at an existing tree to reuse (e.g. the demo's ``data/sample``). The
    DeepfakeBench-style frame index cut from its FF++ videos is written into it too: tests that ask for
    it find it there, rather than two workers writing it at once.
    """
    from utils.data.sample import make_image_sample, make_sample_data
    with built_once(shared_dir(tmp_path_factory), "sample") as out:
        out = make_sample_data(Path(os.environ.get("DEEPFAKE_SAMPLE_DIR") or out), seed=0, scale="test")
        make_image_sample(out, "deepfakebench")      # tests ask for it inside the tree: written here, once
    return out


@pytest.fixture(scope="session")
def stage_cache_root(sample_data, tmp_path_factory) -> Path:
    """One face-crop cache root for every test that trains through the stage runner on the sample data,
    with the caches of every configuration in ``tests/helpers/caches.py`` built (caches are keyed by
    root and build settings: the tests find them complete and only read them).

    ``DEEPFAKE_TEST_CACHE_ROOT`` keeps them between sessions (with a fixed ``DEEPFAKE_SAMPLE_DIR``).
    """
    from tests.helpers.caches import build_stage_caches
    with built_once(shared_dir(tmp_path_factory), "stage-cache") as root:
        root = Path(os.environ.get("DEEPFAKE_TEST_CACHE_ROOT") or root)
        build_stage_caches(root, sample_data)
    return root


@pytest.fixture(scope="session")
def image_samples(tmp_path_factory) -> Path:
    """The 3-class image folder and the multi-source image set (seed 0), written once per test session."""
    from utils.data.sample import make_image_sample
    with built_once(shared_dir(tmp_path_factory), "image-samples") as out:
        for name in ("imagefolder", "manifest"):
            make_image_sample(out, name)
    return out
