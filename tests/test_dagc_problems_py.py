"""MLPProblem (NumPy network for the Python path) and the docstring examples of the DAGC files."""
import doctest

import numpy as np
import pytest

import pyqsgd as pq
from pyqsgd import dagc, problems_py, threshold
from pyqsgd.methods import dagc as dagc_method


@pytest.mark.parametrize("module", [dagc, threshold, dagc_method, problems_py], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_gradient_matches_finite_differences(activation):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, size=40)
    prob = pq.problems_py.MLPProblem(X, y, hidden=4, activation=activation, l2=0.01)
    x = prob.init(key=1) + 0.1 * rng.standard_normal(prob.dim)
    idx = np.arange(0, 40, 3)
    g = prob.grad(x, idx)
    eps = 1e-6
    num = np.empty(prob.dim)
    for j in range(prob.dim):
        e = np.zeros(prob.dim)
        e[j] = eps
        num[j] = (prob.loss(x + e, idx) - prob.loss(x - e, idx)) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)
    assert prob.dim == 4 * 5 + 4 + 3 * 4 + 3
    assert prob.loss(x) == pytest.approx(np.mean([prob.loss(x, [i]) - 0.005 * x @ x for i in range(40)])
                                         + 0.005 * x @ x)


def test_mlp_bad_input_and_init_is_keyed():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="one label per row"):
        pq.problems_py.MLPProblem(X, [0, 1])
    with pytest.raises(TypeError, match="integer"):
        pq.problems_py.MLPProblem(X, [0.5, 1, 0, 1])
    with pytest.raises(ValueError, match="activation"):
        pq.problems_py.MLPProblem(X, [0, 1, 0, 1], activation="gelu")
    prob = pq.problems_py.MLPProblem(X, [0, 1, 0, 1], hidden=3)
    np.testing.assert_array_equal(prob.init(key=5), prob.init(key=5))
    assert not np.array_equal(prob.init(key=5), prob.init(key=6))
    with pytest.raises(ValueError, match="dim"):
        prob.loss(np.zeros(3))


def test_dagc_on_mlp_with_local_steps_learns():
    X, y = pq.data.load_bundled("digits")
    prob = pq.problems_py.MLPProblem(X, y, hidden=16)
    parts = pq.data.partition(y, 4, scheme="size_skew", skew=10, alpha=0.5, key=0)
    x0 = prob.init(key=0)
    hist = pq.simulate(prob, pq.methods.DAGC(variant="R", mean=0.1), n_workers=4, rounds=10, lr=1.0,
                       partition=parts, x0=x0, key=0, local_steps=3, local_lr=0.5, batch_size=16)
    assert prob.accuracy(hist.x) > prob.accuracy(x0) + 0.2
