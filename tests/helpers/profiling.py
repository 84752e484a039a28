"""Per-test and per-fixture timings of a pytest run as JSON (``--profile-json PATH``), a pytest plugin.

Registered by tests/conftest.py. Every process that runs tests (the only one, or each pytest-xdist
worker) times each fixture setup and hands the timings to the setup report of the test that paid for
them; the process that collects the reports (the only one, or the xdist controller) writes one file
when the session ends. ``bench/test_profile.py`` (``make test-profile``) runs the suite with it, prints
the costliest tests and fixtures, and compares two such files.

File layout (``format`` 1)::

    {"format", "started", "wall_s", "exitstatus", "args", "workers", "cpus", "loadavg": {"start", "end"},
     "summary": {outcome: count},
     "tests": [{"nodeid", "outcome", "worker", "setup", "call", "teardown", "total",
                "fixtures": [{"name", "scope", "seconds"}]}],   # costliest first; setups >= 10 ms
     "fixtures": [{"name", "scope", "count", "total_s", "max_s"}]}    # costliest first

A fixture's ``seconds`` are its own setup (the fixtures it requests are set up before it and counted
on their own); a test's ``setup`` is the sum of the fixture setups it triggered plus pytest's overhead.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

OPTION = "--profile-json"
FORMAT = 1
MIN_LISTED_S = 0.01     # a test lists the fixture setups that took at least this long (all count in totals)


def pytest_addoption(parser):
    parser.addoption(OPTION, metavar="PATH", default=None,
                     help="write per-test and per-fixture setup times of this run to PATH (JSON)")


def pytest_configure(config):
    path = config.getoption(OPTION)
    if not path:
        return
    config.pluginmanager.register(FixtureTimer(), "profile-fixture-timer")
    if not hasattr(config, "workerinput"):          # the process that sees every report
        config.pluginmanager.register(Recorder(Path(path), config), "profile-recorder")


class FixtureTimer:
    """Times fixture setups in this process; the setup report of the running test carries them."""

    def __init__(self):
        self.current: str | None = None
        self.pending: dict[str, list[dict]] = defaultdict(list)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        self.current = item.nodeid
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        started = time.perf_counter()
        yield
        self.pending[self.current or "<collection>"].append(
            {"name": fixturedef.argname, "scope": fixturedef.scope,
             "seconds": round(time.perf_counter() - started, 4)})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        if call.when == "setup":                     # plain data: xdist sends it to the controller
            report.fixture_setup = self.pending.pop(item.nodeid, [])


class Recorder:
    """Gathers the reports of every test and writes the JSON file at the end of the session."""

    def __init__(self, path: Path, config):
        self.path, self.config = path, config
        self.started, self.wall = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
        self.load_start = _loadavg()
        self.tests: dict[str, dict] = {}
        self.fixture_setups: list[dict] = []

    def pytest_runtest_logreport(self, report):
        entry = self.tests.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed",
                                                      "worker": getattr(report, "worker", "main"),
                                                      "setup": 0.0, "call": 0.0, "teardown": 0.0,
                                                      "fixtures": []})
        entry[report.when] = round(report.duration, 4)
        fixtures = getattr(report, "fixture_setup", [])
        self.fixture_setups += fixtures
        entry["fixtures"] += [f for f in fixtures if f["seconds"] >= MIN_LISTED_S]
        entry["outcome"] = _outcome(entry["outcome"], report)

    def pytest_sessionfinish(self, session, exitstatus):
        tests = sorted(self.tests.values(), key=lambda t: -(t["setup"] + t["call"] + t["teardown"]))
        for t in tests:
            t["total"] = round(t["setup"] + t["call"] + t["teardown"], 4)
        doc = {"format": FORMAT, "started": self.started, "wall_s": round(time.perf_counter() - self.wall, 2),
               "exitstatus": int(exitstatus), "args": sys.argv[1:], "workers": _workers(self.config),
               "cpus": os.cpu_count(), "loadavg": {"start": self.load_start, "end": _loadavg()},
               "summary": dict(Counter(t["outcome"] for t in tests)), "tests": tests,
               "fixtures": fixture_totals(self.fixture_setups)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(self.path)


def _outcome(before: str, report) -> str:
    """passed < skipped < failed < error (a failing setup or teardown): the worst phase wins."""
    if report.failed:
        now = "failed" if report.when == "call" else "error"
    elif report.skipped:
        now = "skipped"
    else:
        return before
    order = ("passed", "skipped", "failed", "error")
    return max(before, now, key=order.index)


def fixture_totals(setups: list[dict]) -> list[dict]:
    """Every fixture's setups summed over the run (a session fixture set up once per xdist worker counts
    once per worker), costliest first."""
    out: dict[tuple[str, str], dict] = {}
    for f in setups:
        row = out.setdefault((f["name"], f["scope"]), {"name": f["name"], "scope": f["scope"], "count": 0,
                                                       "total_s": 0.0, "max_s": 0.0})
        row["count"] += 1
        row["total_s"] = round(row["total_s"] + f["seconds"], 4)
        row["max_s"] = max(row["max_s"], f["seconds"])
    return sorted(out.values(), key=lambda r: -r["total_s"])


def _workers(config) -> int | str:
    """xdist workers (0 without xdist)."""
    n = getattr(config.option, "numprocesses", None)
    return n if isinstance(n, int) else (str(n) if n else 0)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
