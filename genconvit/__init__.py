"""The repaired GenConViT family.

Importing it registers ``genconvit_ed``, ``genconvit_vae`` and ``genconvit``.
"""
from .model import GenConViT, GenConViTConfig  # noqa: F401  (import registers the variants)
