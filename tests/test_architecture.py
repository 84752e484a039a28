"""The architecture, checked: one-way layers, no cycles, no dataset names in shared code, small modules.

The import graph is read from the source with ``ast`` (nothing is executed). The rules are the ones
``docs/ARCHITECTURE.md`` states; each check also runs once on a planted violation, so a check that
cannot fail would show up here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from utils.core.config import Config, deep_merge
from utils.core.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("utils", "evaluation", "genconvit", "specialists", "baselines")
MODEL_FAMILIES = ("genconvit", "specialists", "baselines")
# layer -> the layers it may import (besides itself); model families may import the core only
LAYERS = {
    "utils.core": (),
    "utils.data": ("utils.core",),
    "models": ("utils.core",),
    "utils.engine": ("utils.core", "utils.data"),
    "evaluation": ("utils.core", "utils.data", "utils.engine"),
    "utils.orchestration": ("utils.core", "utils.data", "utils.engine", "evaluation"),
}
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 50, 400


def layer_of(module: str) -> str | None:
    if module.split(".")[0] in MODEL_FAMILIES:
        return "models"
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _library_files() -> list[Path]:
    return [p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in sorted((ROOT / pkg).rglob("*.py"))]


def library_sources() -> dict[str, str]:
    """{module name: source} of every library module (the packages, not launch/, bench/ or tests/)."""
    return {module_name(p): p.read_text() for p in _library_files()}


PACKAGE_MODULES = {module_name(p) for p in _library_files() if p.name == "__init__.py"}
ALL_MODULES = {module_name(p) for p in _library_files()}


def imports(module: str, source: str) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import of a project module."""
    is_pkg = module in PACKAGE_MODULES
    out = []
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against the importing module's package
                parts = module.split(".")[: len(module.split(".")) - node.level + is_pkg]
                base = ".".join(parts + ([node.module] if node.module else []))
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in ALL_MODULES else base for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            if name.split(".")[0] in PACKAGES + ("launch", "bench", "tests"):
                out.append((name, node.lineno, id(node) in inner))
    return out


def layer_violations(sources: dict[str, str]) -> list[str]:
    found = []
    for module, source in sources.items():
        own = layer_of(module)
        for target, line, _ in imports(module, source):
            other = layer_of(target)
            family = target.split(".")[0]
            if other is None:
                found.append(f"{module}:{line} imports {target} (launch/, bench/ and tests/ are not libraries)")
            elif other == "models" and own == "models" and family != module.split(".")[0]:
                found.append(f"{module}:{line} imports another model family ({target})")
            elif other != own and other not in LAYERS[own]:
                found.append(f"{module}:{line} ({own}) imports {target} ({other}): imports go downward only")
    return found


def cycles(sources: dict[str, str]) -> list[list[str]]:
    """Import cycles between modules (each reported once, as the path that closes it)."""
    graph = {m: {t for t, _, _ in imports(m, s) if t in sources} for m, s in sources.items()}
    state, found = {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                found.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_imports_go_one_way():
    assert layer_violations(library_sources()) == []


def test_an_upward_import_is_caught():
    planted = {**library_sources(), "utils.core._probe": "from utils.engine.trainer import Trainer\n",
               "specialists._probe": "import genconvit.model\n", "utils.data._probe": "import specialists\n"}
    found = layer_violations(planted)
    assert any("utils.core._probe" in v and "downward" in v for v in found)
    assert any("specialists._probe" in v and "another model family" in v for v in found)
    assert any("utils.data._probe" in v for v in found)


def test_no_import_cycles():
    assert cycles(library_sources()) == []
    planted = {**library_sources(), "utils.data.leakage": "import utils.data._a\n",
               "utils.data._a": "import utils.data.leakage\n"}
    assert cycles(planted)


def test_no_project_import_inside_a_function():
    """Imports inside function bodies hide the dependency graph (and the cycles they dodge)."""
    found = [f"{m}:{line} imports {t}" for m, s in library_sources().items()
             for t, line, inner in imports(m, s) if inner]
    assert found == []


def _quoted_dataset_names(sources: dict[str, str]) -> list[str]:
    pattern = re.compile(r"""["'](ffpp|celebdf|dfdc)["']""")
    return [f"{m}:{i}" for m, s in sources.items() if not m.startswith(("utils.data.adapters", "utils.data.sample"))
            and layer_of(m) != "models" for i, line in enumerate(s.splitlines(), 1) if pattern.search(line)]


def test_no_dataset_names_outside_the_adapters():
    assert _quoted_dataset_names(library_sources()) == []
    assert _quoted_dataset_names({"utils.engine._probe": 'if name == "dfdc":\n'}) == ["utils.engine._probe:1"]


def _tracked_text_files() -> list[Path]:
    skip = {".git", ".venv", "data", "runs", "node_modules"}
    return [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".cfg", ".yaml", ".toml")
            and not skip & set(p.relative_to(ROOT).parts) and p.is_file()]


def test_repository_refers_to_nothing_outside_it():
    # spelled in pieces, so that a grep of the repository for these words finds nothing here either
    words = ["shared" + "/", "REFERENCE" + r"\.md", "DESIGN" + r"\.md", "issue" + " [0-9]", "[Pp]redecessor"]
    pattern = re.compile("|".join(words))
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _tracked_text_files() if p.name != Path(__file__).name
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert found == []


def long_definitions(sources: dict[str, str]) -> list[str]:
    found = []
    for module, source in sources.items():
        n = len(source.splitlines())
        if n > MAX_MODULE_LINES:
            found.append(f"{module}: {n} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{module}.{node.name}: {length} lines")
    return found


def test_library_functions_and_modules_stay_small():
    assert long_definitions(library_sources()) == []
    assert long_definitions({"m": "def f():\n" + "    x = 1\n" * 60}) == ["m.f: 61 lines"]


def _redundant(recipe: Path) -> list[str]:
    """Keys a recipe sets to the value it would have without them (recipes list only what differs)."""
    raw = yaml.safe_load(recipe.read_text()) or {}
    parent = raw.pop("extends", None)
    inherited = load_recipe(recipe.parent / parent) if parent else {}
    defaults = Config().to_dict()
    base = deep_merge(defaults, inherited)
    out = []
    for section, values in raw.items():
        if section in ("stages", "models") or not isinstance(values, dict):
            continue
        for key, value in values.items():
            if base.get(section, {}).get(key, object()) == value:
                out.append(f"{recipe.name}: {section}.{key}")
    return out


@pytest.mark.parametrize("recipe", sorted((ROOT / "launch" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_list_only_what_differs(recipe):
    assert _redundant(recipe) == []
