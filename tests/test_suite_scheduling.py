"""How `make test` spreads the suite (tests/helpers/scheduling.py) and what its profile records
(tests/helpers/profiling.py): the rules, checked on node ids and on the test files they name."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

from tests.helpers import profiling, scheduling
from tests.helpers.scheduling import MULTIPROC, MULTIPROC_GROUP, SPREAD, in_run_order, unit_of, unit_costs

TESTS = Path(__file__).resolve().parent


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_entry_names_existing_tests():
    """A renamed module or test would silently leave the multi-process group: each entry must match."""
    for entry in MULTIPROC:
        module, _, prefix = entry.partition("::")
        names = _test_functions(module)
        assert any(n.startswith(prefix or "test_") for n in names), entry
    assert all((TESTS / m).is_file() for m in SPREAD)


def test_units_group_multiprocess_tests_modules_and_spread_ones():
    assert unit_of("tests/test_crossval_e2e.py::test_x") == MULTIPROC_GROUP
    assert unit_of("tests/test_reliability.py::test_sigterm_saves[2]") == MULTIPROC_GROUP
    assert unit_of("tests/test_reliability.py::test_same_command") == "tests/test_reliability.py"
    assert unit_of("tests/test_classes.py::test_a[x/y]") == "tests/test_classes.py"
    assert unit_of("tests/test_models.py::test_a[x::y]") == "tests/test_models.py::test_a[x::y]"


def test_multiprocess_tests_run_in_entry_order_each_module_together():
    ids = ["tests/test_crossval_e2e.py::a", "tests/test_reliability.py::test_extract_faces_b",
           "tests/test_trainer_distributed.py::c", "tests/test_reliability.py::test_sigterm_d[1]",
           "tests/test_trainer_distributed.py::e", "tests/test_curriculum_e2e.py::f"]
    order = list(in_run_order(MULTIPROC_GROUP, dict.fromkeys(ids, False)))
    assert order == [ids[2], ids[4], ids[3], ids[1], ids[5], ids[0]]
    assert list(in_run_order("tests/test_x.py", dict.fromkeys(ids[::-1], False))) == ids[::-1]


def test_costs_come_from_the_profile_by_unit(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"tests": [
        {"nodeid": "tests/test_classes.py::a", "total": 2.0},
        {"nodeid": "tests/test_classes.py::b", "total": 3.0},
        {"nodeid": "tests/test_crossval_e2e.py::c", "total": 7.0}]}))
    assert unit_costs(profile) == {"tests/test_classes.py": 5.0, MULTIPROC_GROUP: 7.0}
    profile.write_text("{not json")
    assert unit_costs(profile) == {} and unit_costs(tmp_path / "missing.json") == {}


def test_scheduler_only_for_loadgroup():
    config = SimpleNamespace(getvalue=lambda name: "load")
    assert scheduling.make_scheduler(config, None) is None


def test_outcome_keeps_the_worst_phase_and_fixtures_are_summed():
    rep = lambda when, outcome: SimpleNamespace(when=when, failed=outcome == "failed",  # noqa: E731
                                                skipped=outcome == "skipped")
    assert profiling._outcome("passed", rep("call", "passed")) == "passed"
    assert profiling._outcome("passed", rep("call", "failed")) == "failed"
    assert profiling._outcome("failed", rep("teardown", "failed")) == "error"
    assert profiling._outcome("error", rep("call", "skipped")) == "error"
    rows = profiling.fixture_totals([{"name": "a", "scope": "session", "seconds": 2.0},
                                     {"name": "b", "scope": "module", "seconds": 0.5},
                                     {"name": "a", "scope": "session", "seconds": 1.0}])
    assert rows == [{"name": "a", "scope": "session", "count": 2, "total_s": 3.0, "max_s": 2.0},
                    {"name": "b", "scope": "module", "count": 1, "total_s": 0.5, "max_s": 0.5}]
