"""Dataset adapters: one module per on-disk layout, each registering a :class:`DatasetAdapter`.

Importing this package registers the built-in adapters (it is the ``deepfake_toolkit.datasets``
entry point). Adding a dataset is one module and one line here; see :mod:`utils.data.adapters.base`.
"""
from utils.data.adapters import (  # noqa: F401  (each import registers an adapter)
    celebdf, deepfakebench, dfdc, ffpp, imagefolder, manifest,
)
from utils.data.adapters.base import DatasetAdapter
from utils.data.adapters.common import DatasetLayoutError

__all__ = ["DatasetAdapter", "DatasetLayoutError"]
