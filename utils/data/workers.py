"""How many data-loader worker processes a run gets: ``data.num_workers``, capped at the usable cores.

A recipe written for a GPU server (4 or more workers per loader) run on a small machine would start
more worker processes than the cores this process may run on; PyTorch then warns once per loader
(training, validation, each evaluated split). Capping here starts only what the machine can run and
says so in one INFO line per run instead.

Usable cores: the CPUs this process may be scheduled on (``os.sched_getaffinity``, which a container's
cpuset restricts), lowered to a cgroup CPU quota where one is readable (cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us``), else ``os.cpu_count()``.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))

_reported: set[tuple[int, int]] = set()


def cgroup_cpus(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> int | None:
    """The CPUs a cgroup quota allows (rounded up, at least 1); None when unlimited or unreadable."""
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        if v1[0].is_file() and v1[1].is_file():
            quota, period = int(v1[0].read_text()), int(v1[1].read_text())
            return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def usable_cores() -> int:
    """The cores this process can use: its CPU affinity (else the CPU count), capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def loader_workers(requested: int, cores: int | None = None) -> int:
    """``requested`` worker processes, or the usable cores when fewer (one INFO line per setting)."""
    cores = usable_cores() if cores is None else cores
    if requested <= cores:
        return requested
    if (requested, cores) not in _reported:
        _reported.add((requested, cores))
        logger.info("data.num_workers=%d capped at %d: this process can use %d core(s)",
                    requested, cores, cores)
    return cores
