"""The repaired GenConViT family, and the original release's networks as legacy models.

Importing it registers ``genconvit_ed``, ``genconvit_vae`` and ``genconvit`` (repaired), and
``genconvit_original_ed`` / ``genconvit_original_vae`` with their ``genconvit`` import mappings.
"""
from . import original  # noqa: F401  (import registers the legacy models and their import mappings)
from .model import GenConViT, GenConViTConfig  # noqa: F401  (import registers the variants)
