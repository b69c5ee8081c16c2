"""The runnable examples in the public docstrings are part of the contract."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["pyqsgd.compressors", "pyqsgd.combine", "pyqsgd.measure", "pyqsgd.reference"])
def test_doctests(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or module == "pyqsgd.combine"


def test_every_public_compressor_documents_definition_bits_and_rng():
    import pyqsgd as pq
    for cls in (pq.Identity, pq.TopK, pq.RandK, pq.Sign, pq.ScaledSign, pq.QSGD, pq.TernGrad, pq.Natural, pq.Chain,
                pq.Induced):
        doc = cls.__doc__ or ""
        assert "Bits" in doc or "bits" in doc, cls
        assert ">>>" in doc, f"{cls.__name__} has no runnable example"
        assert "random" in doc.lower() or "draw" in doc.lower() or "key" in doc.lower(), cls
