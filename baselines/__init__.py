"""DeepfakeBench's image baselines rebuilt on timm, with the import rules for their checkpoints.

Importing registers the models ``xception``, ``f3net`` and ``efficientnetb4`` and the
``deepfakebench`` import mappings (see ``launch/import_weights.py``).
"""
from . import efficientnet, f3net, xception  # noqa: F401  (importing registers models and mappings)
