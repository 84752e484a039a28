"""The five specialists on EfficientNet-B4; importing registers ``bg``, ``av``, ``cm``, ``rr``, ``tm``."""
from . import av, bg, cm, rr, tm  # noqa: F401  (importing registers the variants)
from .net import BranchAttention, SpecialistConfig, SpecialistNet  # noqa: F401
