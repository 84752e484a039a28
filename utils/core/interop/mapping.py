"""Key mappings from other codebases' checkpoints to this toolkit's models, as explicit rules.

A :class:`KeyMapping` belongs to one (format, architecture) pair and is declared next to the model it
fills (``baselines/xception.py`` owns DeepfakeBench's Xception layout, ``genconvit/original.py`` the
original GenConViT's). It is an ordered list of :class:`Rule`: the first rule whose pattern matches a
source key (``re.fullmatch``) decides, and it either

* **renames** the key (a ``re`` replacement template, or a function of the match), optionally
  transforming the tensor (e.g. permuting a head's rows to this toolkit's label order), or
* **drops** it, and must say why (the reason goes into the import report and the sidecar).

A key no rule matches is an error; so is a model key no source key fills, a shape that differs, or
two source keys that land on one target. There is no ``strict=False`` anywhere: a partial load is how
a random classifier head gets into use (≈ 50 % accuracy, every prediction in one class).

Mappings register with :func:`register_mapping` when their model family is imported; the registry
(:func:`get_mapping`, :func:`list_mappings`) is a :class:`~utils.core.registry.Registry` over the same
``deepfake_toolkit.models`` entry points as the models, so shared code never names an architecture.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import torch

from utils.core.errors import UnknownNameError
from utils.core.registry import Registry

Target = str | Callable[[re.Match], str] | None


@dataclass(frozen=True)
class Rule:
    """One line of a key mapping: rename (``target`` set) or drop (``target`` None, ``reason`` given)."""

    pattern: str
    target: Target
    name: str
    reason: str = ""
    transform: Callable[[torch.Tensor, str], torch.Tensor] | None = None  # (tensor, target key) -> tensor

    def __post_init__(self):
        re.compile(self.pattern)
        if self.target is None and not self.reason:
            raise ValueError(f"drop rule '{self.name}' ({self.pattern}) must say why the keys are dropped")

    @property
    def drops(self) -> bool:
        return self.target is None

    def match(self, key: str) -> re.Match | None:
        return re.fullmatch(self.pattern, key)

    def target_key(self, m: re.Match) -> str:
        return self.target(m) if callable(self.target) else m.expand(self.target)


def rename(pattern: str, target: str | Callable[[re.Match], str], name: str, *,
           transform: Callable[[torch.Tensor, str], torch.Tensor] | None = None, reason: str = "") -> Rule:
    """A rule mapping keys matching ``pattern`` to ``target`` (``\\1`` style template or a function)."""
    return Rule(pattern, target, name, reason, transform)


def drop(pattern: str, name: str, reason: str) -> Rule:
    """A rule dropping keys matching ``pattern``, with the reason recorded in the import report."""
    return Rule(pattern, None, name, reason)


@dataclass
class Dropped:
    """The source keys one drop rule removed."""

    rule: str
    reason: str
    keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "reason": self.reason, "count": len(self.keys), "keys": self.keys}


@dataclass
class MappingResult:
    """The outcome of applying a mapping to a source state dict (no model involved yet)."""

    mapped: dict[str, torch.Tensor]               # target key -> tensor (transformed)
    origin: dict[str, str]                        # target key -> source key
    dropped: dict[str, Dropped]                   # rule name -> what it dropped
    unmapped: list[str]                           # source keys no rule matched
    collisions: list[tuple[str, str, str]]        # (target, first source, second source)
    missing_required: list[str]                   # descriptions of required source keys absent

    @property
    def n_dropped(self) -> int:
        return sum(len(d.keys) for d in self.dropped.values())

    def dropped_list(self) -> list[dict]:
        return [d.to_dict() for d in self.dropped.values() if d.keys]


@dataclass
class Fit:
    """How mapped keys compare with a model's own state dict (names and shapes)."""

    missing: list[str]                               # model keys nothing maps to
    unexpected: list[str]                            # mapped keys the model does not have
    shape_mismatch: list[tuple[str, tuple, tuple]]   # (target key, checkpoint shape, model shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)


@dataclass(frozen=True)
class KeyMapping:
    """Everything needed to turn one foreign layout into one registered model.

    Args:
        format: the codebase the checkpoint comes from (``deepfakebench``, ``genconvit``).
        arch: the registered model name it fills.
        rules: ordered rules; the first match wins.
        head: patterns of the source keys of the classifier head (at least one must be present,
            else the checkpoint is refused as headless).
        required: ``(pattern, description)`` source keys that must be present besides the head
            (e.g. F3Net's FAD head); a missing one is an error naming the description.
        aliases: other ``--arch`` names accepted for this mapping.
        description: one line for listings and reports (what the upstream network is).
        model_kwargs: builder arguments read off the source state dict (e.g. head dropout).
        validate: extra checks of the source state dict; raises ``ValueError`` with a message.
        notes: sentences recorded in the sidecar (behaviour that differs from upstream, label order).
        label_order: the upstream meaning of the head's output rows, in order.
        head_hint: where the head lives, for people (``backbone.last_linear.weight [2, 2048]``).
    """

    format: str
    arch: str
    rules: tuple[Rule, ...]
    head: tuple[str, ...]
    required: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = ()
    description: str = ""
    model_kwargs: Callable[[dict[str, torch.Tensor]], dict] | None = None
    validate: Callable[[dict[str, torch.Tensor]], None] | None = None
    notes: tuple[str, ...] = ()
    label_order: tuple[str, ...] = ("real", "fake")
    head_hint: str = ""

    def head_keys(self, state: dict[str, torch.Tensor]) -> list[str]:
        return [k for k in state if any(re.fullmatch(p, k) for p in self.head)]

    def apply(self, state: dict[str, torch.Tensor]) -> MappingResult:
        mapped: dict[str, torch.Tensor] = {}
        origin: dict[str, str] = {}
        dropped = {r.name: Dropped(r.name, r.reason) for r in self.rules if r.drops}
        unmapped, collisions = [], []
        for key, tensor in state.items():
            rule, m = next(((r, m) for r in self.rules if (m := r.match(key))), (None, None))
            if rule is None:
                unmapped.append(key)
                continue
            if rule.drops:
                dropped[rule.name].keys.append(key)
                continue
            target = rule.target_key(m)
            if target in origin:
                collisions.append((target, origin[target], key))
                continue
            mapped[target] = rule.transform(tensor, target) if rule.transform else tensor
            origin[target] = key
        missing_required = [desc for pattern, desc in self.required
                            if not any(re.fullmatch(pattern, k) for k in state)]
        return MappingResult(mapped, origin, dropped, unmapped, collisions, missing_required)

    def kwargs_for(self, state: dict[str, torch.Tensor]) -> dict:
        return dict(self.model_kwargs(state)) if self.model_kwargs else {}


def fit(mapped: dict[str, torch.Tensor], expected: dict[str, tuple]) -> Fit:
    """Compare mapped tensors with a model's ``{key: shape}``."""
    missing = sorted(expected.keys() - mapped.keys())
    unexpected = sorted(mapped.keys() - expected.keys())
    shapes = [(k, tuple(v.shape), tuple(expected[k])) for k, v in mapped.items()
              if k in expected and tuple(v.shape) != tuple(expected[k])]
    return Fit(missing, unexpected, shapes)


def swap_rows(order: tuple[int, ...]) -> Callable[[torch.Tensor, str], torch.Tensor]:
    """A transform putting rows ``order`` first-to-last (a head's output permutation)."""
    def permute(t: torch.Tensor, key: str) -> torch.Tensor:
        if t.shape[0] != len(order):
            raise ValueError(f"{key}: expected {len(order)} output rows to permute, "
                             f"got shape {tuple(t.shape)}")
        return t[list(order)].clone()
    return permute


# ----------------------------------------------------------------------------------------- registry
# entries "format/name" (the arch and each alias); the model families register them on import
MAPPINGS: Registry[KeyMapping] = Registry("import mapping", "deepfake_toolkit.models")


def register_mapping(mapping: KeyMapping) -> KeyMapping:
    """Register ``mapping`` under its (format, arch) and aliases; a different duplicate is an error."""
    for name in (mapping.arch, *mapping.aliases):
        MAPPINGS.register(f"{mapping.format}/{name}")(mapping)
    return mapping


def list_mappings() -> list[KeyMapping]:
    """Every registered mapping once, sorted by (format, arch)."""
    unique = {id(m): m for _, m in MAPPINGS.items()}
    return sorted(unique.values(), key=lambda m: (m.format, m.arch))


def formats() -> list[str]:
    return sorted({m.format for m in list_mappings()})


def get_mapping(fmt: str, arch: str) -> KeyMapping:
    """The mapping for ``--format fmt --arch arch`` (aliases accepted).

    Raises:
        UnknownNameError: no such format, or no such architecture in it; the message lists the valid ones.
    """
    if f"{fmt}/{arch}" in MAPPINGS:
        return MAPPINGS.get(f"{fmt}/{arch}")
    known = formats()
    if fmt not in known:
        raise UnknownNameError(f"unknown format '{fmt}'; import formats: {', '.join(known)}")
    archs = [m.arch + (f" (or {', '.join(m.aliases)})" if m.aliases else "")
             for m in list_mappings() if m.format == fmt]
    raise UnknownNameError(f"format '{fmt}' has no architecture '{arch}'; choose one of: {'; '.join(archs)}")
