"""Recipes: YAML files (with ``extends:`` chains) and ``--set`` overrides, resolved into a :class:`Config`.

Precedence, the one rule every command follows: defaults < recipe (its ``extends`` chain, then a
stage's and a model's sections) < the dataset's root environment variable (``$FFPP_ROOT``...) <
``--set section.key=value``; a config asking for the generated sample data (``data.sample: true``) is
not redirected by the environment variable. YAML syntax errors and keys written twice name ``file:line``. The
resolved config is saved beside each run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from utils.core.config import Config, ConfigError, DataConfig, build_config, check_values, deep_merge, validate_sections
from utils.core.fileio import atomic_write_text
from utils.core.registry import DATASETS


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key written twice in one mapping (YAML keeps the last)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"{node.start_mark.name}:{key_node.start_mark.line + 1}: key '{key}' is written "
                              f"twice (first on line {seen[key]}); keep one")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax errors and duplicate keys become a :class:`ConfigError` with file:line."""
    try:
        with open(path) as f:
            return yaml.load(f, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({e.problem or e.context})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the recipe ({e})") from None


def load_recipe(path: str | os.PathLike, _seen: tuple = ()) -> dict:
    """Read a YAML recipe, following ``extends:`` (a path relative to the file), validated per file."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself ({' -> '.join(map(str, _seen))})")
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    parent = raw.pop("extends", None)
    base = load_recipe(path.parent / parent, _seen + (path,)) if parent else {}
    return deep_merge(base, validate_sections(raw, str(path)))


def _override_value(item: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({getattr(e, 'problem', e)}); "
                          "quote lists as a whole, e.g. \"data.train_chunks=[1,2]\"") from None


def parse_overrides(items: list[str]) -> dict:
    """``["optim.lr=3e-4", "stages.4.trainer.epochs_per_chunk=1"]`` -> nested dict, validated."""
    nested: dict = {}
    for item in items or []:
        dotted, eq, text = item.partition("=")
        keys = dotted.strip().split(".")
        if not eq or len(keys) < 2 or not all(keys):
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        node = nested
        for k in keys[:-1]:
            node = node.setdefault(int(k) if k.isdigit() else k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{k}' is set twice, as a value and as a section")
        node[keys[-1]] = _override_value(item, text)
    return validate_sections(nested, "--set")


def environment_root(raw: dict, dataset: str) -> dict:
    """``raw`` with ``data.root`` set from the adapter's environment variable, when that is set."""
    env = DATASETS.get(dataset).root_env if dataset in DATASETS else ""
    value = os.environ.get(env, "") if env else ""
    return deep_merge(raw, {"data": {"root": value}}) if value else raw


def resolve(raw: dict, overrides: list[str] | None = None) -> Config:
    """Merge ``raw`` (recipe layers), the dataset's root environment variable, then ``--set``.

    This is the one precedence rule: ``--set`` > environment > recipe > defaults. A recipe or ``--set``
    that asks for the sample data (``data.sample: true``) is not redirected by the environment variable
    (an explicit ``data.root`` still wins); with no root and no ``data.sample``, runs stop
    (:func:`utils.data.index.data_root`).
    """
    over = parse_overrides(overrides or [])
    data = deep_merge(raw, over).get("data", {})
    dataset = data.get("dataset", DataConfig.dataset)
    base = raw if data.get("sample", DataConfig.sample) else environment_root(raw, dataset)
    return check_values(build_config(deep_merge(base, over)), "recipe and --set")


def load_config(recipe: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults < recipe (with its ``extends`` chain) < environment < ``--set`` overrides."""
    return resolve(load_recipe(recipe) if recipe else {}, overrides)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
