"""Registry: duplicates refused, unknown names list the registered ones, None falls back to defaults."""
from __future__ import annotations

import pytest

from utils.core.registry import MODELS, create_model, list_models, register_model


def test_registry_contract():
    @register_model("_test_probe")
    def probe(width: int = 7, **kw):
        return width
    try:
        assert "_test_probe" in list_models()
        assert create_model("_test_probe", width=None) == 7
        assert create_model("_test_probe", width=3) == 3
        with pytest.raises(ValueError, match="already registered"):
            register_model("_test_probe")(lambda: None)
        with pytest.raises(KeyError, match="registered models:.*_test_probe"):
            create_model("nosuch")
    finally:
        MODELS.unregister("_test_probe")
