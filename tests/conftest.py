"""Shared fixtures: offline environment, the bundled sample data (generated once per session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# offline and quiet everywhere, subprocesses included
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover
    HAS_CUDA = False


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)


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
    """The bundled sample datasets at ``small`` scale (seed 0), generated once per test session.

    ``DEEPFAKE_SAMPLE_DIR`` points at an existing tree to reuse (e.g. the demo's ``data/sample``).
    """
    from utils.data.sample import make_sample_data
    out = Path(os.environ.get("DEEPFAKE_SAMPLE_DIR") or tmp_path_factory.getbasetemp() / "sample")
    return make_sample_data(out, seed=0, scale="small")


@pytest.fixture(scope="session")
def stage_cache_root(tmp_path_factory) -> Path:
    """One face-crop cache root for every test that trains through the stage runner on the sample data
    (caches are keyed by root and build settings, so tests with the same settings share them)."""
    return tmp_path_factory.mktemp("stage-cache")


@pytest.fixture(scope="session")
def image_samples(tmp_path_factory) -> Path:
    """The 3-class image folder and the multi-source image set (seed 0), written once per test session."""
    from utils.data.sample import make_image_sample
    out = tmp_path_factory.getbasetemp() / "image-samples"
    for name in ("imagefolder", "manifest"):
        make_image_sample(out, name)
    return out
