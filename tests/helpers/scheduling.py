"""How ``make test`` spreads the suite over pytest-xdist workers (``-n 2 --dist loadgroup``).

Work goes out in units, each run whole on one worker:

* ``multiproc``: every test that starts two processes at once (accelerate launch, two "machines", a
  face-cache build with two workers), and the tests sharing a module fixture with one. One at a time,
  so no two of them compete for the two cores (and the timing-sensitive ones, which kill a run
  mid-epoch, see the speed they were written for).
* a test module, by default: its module-scoped fixtures (trained checkpoints, caches, runs) are then
  built once, on the worker that runs the module.
* a single test, in the modules of :data:`SPREAD`, whose module fixtures cost less than the balance
  gained by sending their slow tests to different workers.

Units go out costliest first (longest-processing-time order): the multi-process group, then by the
times of the last local profile (``bench/results/test_profile.json``, written by ``make test-profile``;
bench/results is not committed, so a fresh clone has none), then the units it does not know in
collection order. xdist asks for a unit whenever a worker runs low, which balances the rest.

Why not xdist's own ``loadgroup``: it tags a grouped test by appending ``@group`` to ``item._nodeid``,
which pytest 9.2 no longer reads (node ids moved to ``item._id``), so its groups silently do nothing.
This scheduler decides in the controlling process from node ids alone.
"""
from __future__ import annotations

import json
from pathlib import Path

MULTIPROC_GROUP = "multiproc"
# in the order they run: first those that need no sample data (the other worker generates it and builds
# the face caches meanwhile), each module's tests together (a module fixture is torn down between modules)
MULTIPROC = ("test_trainer_distributed.py", "test_reliability.py::test_sigterm",
             "test_reliability.py::test_two_machines", "test_reliability.py::test_extract_faces",
             "test_curriculum_e2e.py", "test_crossval_e2e.py")
SPREAD = ("test_models.py", "test_sample_data.py", "test_train_cli.py", "test_predict.py")
PROFILE = Path(__file__).resolve().parents[2] / "bench" / "results" / "test_profile.json"


def _multiproc_rank(nodeid: str) -> int | None:
    """The position of a test's entry in MULTIPROC (None: not a multi-process test)."""
    path, sep, rest = nodeid.partition("::")
    name = f"{Path(path).name}{sep}{rest}"
    return next((i for i, prefix in enumerate(MULTIPROC) if name.startswith(prefix)), None)


def unit_of(nodeid: str) -> str:
    """The work unit of a test: the multi-process group, the test itself (modules in SPREAD), or its
    module."""
    if _multiproc_rank(nodeid) is not None:
        return MULTIPROC_GROUP
    path = nodeid.partition("::")[0]
    return nodeid if Path(path).name in SPREAD else path


def in_run_order(unit: str, tests: dict) -> dict:
    """The tests of a unit in the order to run them: MULTIPROC's for the multi-process group (stable
    within an entry), collection order otherwise."""
    if unit != MULTIPROC_GROUP:
        return tests
    order = sorted(tests, key=lambda nodeid: _multiproc_rank(nodeid))
    return {nodeid: tests[nodeid] for nodeid in order}


def unit_costs(profile: Path = PROFILE) -> dict[str, float]:
    """Seconds per work unit in the last profile ({} without one, or from an unreadable one)."""
    try:
        tests = json.loads(profile.read_text())["tests"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    costs: dict[str, float] = {}
    for t in tests:
        unit = unit_of(t["nodeid"])
        costs[unit] = costs.get(unit, 0.0) + float(t["total"])
    return costs


def make_scheduler(config, log):
    """The scheduler for ``--dist loadgroup`` (None: xdist's own for any other ``--dist``)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with this suite's units, handed out costliest first."""

        costs = unit_costs()

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            known = [u for u in self.workqueue if u in self.costs]
            if MULTIPROC_GROUP in self.workqueue:           # the longest unit, and it cannot be split
                self.workqueue.move_to_end(MULTIPROC_GROUP, last=False)
            elif known:                                     # the costliest next
                self.workqueue.move_to_end(max(known, key=self.costs.__getitem__), last=False)
            unit = next(iter(self.workqueue))
            self.workqueue[unit] = in_run_order(unit, self.workqueue[unit])
            super()._assign_work_unit(node)

    return UnitScheduling(config, log)
