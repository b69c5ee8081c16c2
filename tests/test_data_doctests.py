"""The docstring examples of pyqsgd.data run and print what they claim."""
import doctest

import pytest

from pyqsgd.data import bundled, fingerprint, libsvm, partitions, summary, synthetic


@pytest.mark.parametrize("module", [bundled, fingerprint, libsvm, partitions, summary, synthetic], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
