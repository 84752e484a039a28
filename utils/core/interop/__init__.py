"""Interoperability with other codebases' checkpoints: read, map (explicit rules), inspect, import.

* :mod:`~utils.core.interop.reading`: ``torch.load(weights_only=True)`` / safetensors, containers, wrappers;
* :mod:`~utils.core.interop.mapping`: :class:`~utils.core.interop.mapping.KeyMapping` rules (rename / drop
  with a reason / error) and their registry, filled by the model families that own them;
* :mod:`~utils.core.interop.inspect`: heads, families and import formats a file matches (nothing built);
* :mod:`~utils.core.interop.importer`: the checked import into exported weights + sidecar.

It works on checkpoint files and the model registry only: part of the core layer.
"""
from utils.core.interop.mapping import (KeyMapping, Rule, drop, get_mapping, list_mappings, register_mapping,
                                        rename)

__all__ = ["KeyMapping", "Rule", "drop", "get_mapping", "list_mappings", "register_mapping", "rename"]
