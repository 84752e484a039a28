"""The face-crop caches the stage tests read, built once per test session (conftest's ``stage_cache_root``).

The stage runner builds the cache a run needs on first use; two xdist workers starting runs on the same
cache at once would both build it. Building every cache here first, the way the stage runner does
(:func:`utils.orchestration.data.prepare_data`), leaves the runs nothing to build: they find their
cache complete and only read it. Each entry is a test configuration, widened to every video of its
dataset where a test draws its own subset (another seed, another split cap).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from utils.core.recipe import load_recipe
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.data import prepare_data

logger = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EVERY_VIDEO = ("data.max_videos_per_split=0",)
# (recipe in tests/configs, model, stage, overrides): the caches that tests of several modules read.
# FF++ with the end-to-end settings serves the e2e, guard, cv, reliability and speed-switch runs (every
# video: the guard trains on all of them, the others on subsets). The Celeb-DF and DFDC caches of the
# curriculum's later stages are read by test_curriculum_e2e alone, which builds them as users would.
STAGE_CACHES = (
    ("e2e.yaml", "cm", 1, EVERY_VIDEO),
)


class SingleProcess:
    """What :func:`prepare_data` asks of an accelerator, for one process (no process group needed)."""

    is_main_process, num_processes, process_index = True, 1, 0

    def wait_for_everyone(self) -> None:
        return None


def build_stage_caches(root: Path, sample: Path) -> None:
    """Build (or complete) under ``root`` the cache of every entry of :data:`STAGE_CACHES`."""
    for recipe, model, stage, overrides in STAGE_CACHES:
        started = time.perf_counter()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample))
            cfg = resolve_stage(load_recipe(CONFIGS / recipe), model, stage,
                                [f"data.cache_root={root}", *overrides], recipe=str(CONFIGS / recipe))
            cache, records = prepare_data(cfg, SingleProcess())
        logger.info("stage cache %s (%d videos) ready in %.1f s", cache.name, len(records),
                    time.perf_counter() - started)
