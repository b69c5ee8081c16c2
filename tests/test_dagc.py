"""DAGC (ALGORITHMS.md §4.5): ratio search, thresholds, water-filling, the DAGC method.

Hand computations use volumes that are cubes, so q_i = p_i^(2/3) are proportional to small
integers (27, 8, 1 -> q ∝ 9, 4, 1) and every share is an exact fraction.
"""
import itertools
import pickle

import numpy as np
import pytest

import pyqsgd as pq
from pyqsgd.dagc import assign_ratios, assign_thresholds, ratio_search, topk_counts


# ---- DAGC-R search: hand-computed --------------------------------------------------------------

def test_search_m3_hand_computed():
    # p = (27, 8, 1)/36, q ∝ (9, 4, 1), S ∝ 14.
    # j=3: ref=2, Q=(9+4)/4=13/4, phi = (1/36)(17/4) + (8/36)(13/4)(17/4) = 114.75/36
    # j=2: ref=3, Q=(9+1)/1=10,   phi = (8/36)11 + (1/36)(10)(11) = 198/36
    # j=1: ref=3, Q=(4+1)/1=5,    phi = (27/36)6 + (1/36)(5)(6)  = 192/36
    out = ratio_search([27, 8, 1])
    got = {j: (ref, Q, phi) for j, ref, Q, phi in out["candidates"]}
    assert [c[0] for c in out["candidates"]] == [3, 2, 1]
    np.testing.assert_allclose([got[3][1], got[2][1], got[1][1]], [13 / 4, 10, 5], rtol=1e-13)
    np.testing.assert_allclose([got[3][2], got[2][2], got[1][2]], [114.75 / 36, 198 / 36, 192 / 36], rtol=1e-13)
    assert (got[3][0], got[2][0], got[1][0]) == (2, 3, 3)
    assert out["best"] == 3
    np.testing.assert_allclose(out["r"], np.array([9, 4, 4]) / 17, rtol=1e-13)
    np.testing.assert_allclose(assign_ratios([27, 8, 1], 0.17), [0.27, 0.12, 0.12], rtol=1e-13)


def test_search_largest_pinned_when_it_scores_best():
    # p = (64, 27, 8, 8)/107, q ∝ (16, 9, 4, 4), S ∝ 33; j=3 is skipped (p3 = p4).
    # j=4: ref=3, Q=29/4, phi = (8 33/4 + 8 (29/4)(33/4))/107 = 544.5/107
    # j=2: ref=4, Q=6,    phi = (27 7 + 8 6 7)/107           = 525/107
    # j=1: ref=4, Q=17/4, phi = (64 21/4 + 8 (17/4)(21/4))/107 = 514.5/107  <- smallest
    # r_1 = 1/(1+Q) = 4/21, r_i = q_i/(4 (21/4)) = q_i/21: r = (4, 9, 4, 4)/21.
    out = ratio_search([64, 27, 8, 8])
    assert [c[0] for c in out["candidates"]] == [4, 2, 1]
    np.testing.assert_allclose([c[3] for c in out["candidates"]], np.array([544.5, 525, 514.5]) / 107, rtol=1e-13)
    assert out["best"] == 1
    np.testing.assert_allclose(out["r"], np.array([4, 9, 4, 4]) / 21, rtol=1e-13)
    np.testing.assert_allclose(assign_ratios([64, 27, 8, 8], 0.21), [0.16, 0.36, 0.16, 0.16], rtol=1e-13)


def test_m2_is_always_uniform():
    # Either candidate pins one worker to the other's share: r = (1/2, 1/2), phi = 2 for both.
    for n in ([10, 1], [1, 1000], [3, 3]):
        out = ratio_search(n)
        assert out["best"] == 2
        np.testing.assert_allclose(assign_ratios(n, 0.3), [0.3, 0.3], rtol=1e-14)
        np.testing.assert_allclose([c[3] for c in out["candidates"]], 2.0, rtol=1e-14)


def test_ties_skip_candidates_and_give_equal_ratios():
    # (8, 1, 1): j=2 skipped; j=1 (Q = 2, uniform, phi = 3) beats j=3 (Q = 5, phi = 3.6).
    out = ratio_search([8, 1, 1])
    assert [c[0] for c in out["candidates"]] == [3, 1]
    np.testing.assert_allclose([c[3] for c in out["candidates"]], [3.6, 3.0], rtol=1e-13)
    np.testing.assert_allclose(out["r"], [1 / 3] * 3, rtol=1e-13)
    cr = assign_ratios([5, 9, 9, 2, 5], 0.2)
    assert cr[1] == cr[2] and cr[0] == cr[4]


def test_tie_group_member_can_be_pinned():
    # (8, 8, 1, 1): p = (8, 8, 1, 1)/18, q ∝ (4, 4, 1, 1), S ∝ 10; j = 3 and j = 1 skipped.
    # j=4: ref=3, Q=9, phi = (10 + 90)/18;  j=2: ref=4, Q=6, phi = (56 + 42)/18  <- smallest
    # r_2 = 1/7, r_i = q_i/7: r = (4, 1, 1, 1)/7 -- the second 8 gets the smallest share.
    out = ratio_search([8, 8, 1, 1])
    assert [c[0] for c in out["candidates"]] == [4, 2]
    np.testing.assert_allclose([c[3] for c in out["candidates"]], [100 / 18, 98 / 18], rtol=1e-13)
    np.testing.assert_allclose(out["r"], np.array([4, 1, 1, 1]) / 7, rtol=1e-13)
    # stable sort: of the two 8s in caller order (positions 1 and 3), the later one is pinned
    np.testing.assert_allclose(assign_ratios([1, 8, 1, 8], 0.35), [0.2, 0.8, 0.2, 0.2], rtol=1e-13)


def test_m1_and_equal_volumes_uniform():
    assert assign_ratios([7], 0.3).tolist() == [0.3]
    assert assign_thresholds([7], 0.3).tolist() == pytest.approx([0.3], rel=1e-15)
    for m in (2, 3, 6):
        np.testing.assert_allclose(assign_ratios([4] * m, 0.05), 0.05, rtol=1e-13)
        np.testing.assert_allclose(assign_thresholds([4] * m, 2.0), 2.0, rtol=1e-13)
        assert [c[0] for c in ratio_search([4] * m)["candidates"]] == [m]


def _reference_search(n):
    """Independent twin: every candidate, pure Python floats, 1-based loops."""
    order = sorted(range(len(n)), key=lambda i: (-n[i], i))
    ns = [float(n[i]) for i in order]
    m, tot = len(ns), sum(ns)
    p = [v / tot for v in ns]
    q = [v ** (2.0 / 3.0) for v in p]
    S = sum(q)
    best = None
    for j in range(m, 0, -1):
        if j < m and ns[j - 1] == ns[j]:
            continue
        ref = m if j != m else m - 1
        Q = (S - q[j - 1]) / q[ref - 1]
        phi = p[j - 1] * (1 + Q) + p[ref - 1] * Q * (1 + Q)
        if best is None or phi < best[0]:
            r = [q[i] / (q[ref - 1] * (1 + Q)) if i != j - 1 else 1 / (1 + Q) for i in range(m)]
            best = (phi, r)
    out = [0.0] * m
    for pos, i in enumerate(order):
        out[i] = best[1][pos]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_twin_and_budget(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 12))
    n = rng.integers(1, 50, size=m)
    c = 0.05
    r = _reference_search(n.tolist())
    cr = assign_ratios(n, c)
    if max(r) * m * c <= 1:
        np.testing.assert_allclose(cr, np.array(r) * m * c, rtol=1e-12)
    assert cr.mean() == pytest.approx(c, rel=1e-12)


def test_caller_order_is_respected():
    n = np.array([3.0, 40.0, 7.0, 1.0, 19.0])
    base_r, base_t = assign_ratios(n, 0.1), assign_thresholds(n, 0.5)
    for perm in itertools.permutations(range(5)):
        perm = list(perm)
        np.testing.assert_allclose(assign_ratios(n[perm], 0.1), base_r[perm], rtol=1e-14)
        np.testing.assert_allclose(assign_thresholds(n[perm], 0.5), base_t[perm], rtol=1e-14)


def test_log_spaced_volumes_larger_workers_get_more():
    n = np.geomspace(100, 1, 8)  # size_skew with skew = 100
    cr = assign_ratios(n, 0.1)
    assert np.all(np.diff(cr) <= 1e-15) and cr[0] > 2 * cr[-1]
    assert ratio_search(n)["best"] == 8
    assert cr[-1] == pytest.approx(cr[-2], rel=1e-14)  # j = m pinned to worker m-1's share


# ---- water-filling -----------------------------------------------------------------------------

def test_clipping_water_fills_and_keeps_budget():
    n = np.geomspace(1000, 1, 6)
    for c in (0.3, 0.5, 0.8, 0.95, 1.0):
        raw = np.array(_reference_search(n.tolist())) * 6 * c
        cr = assign_ratios(n, c)
        assert cr.max() <= 1.0 + 1e-15
        assert cr.mean() == pytest.approx(c, rel=1e-12)
        clipped = raw >= 1.0
        if c < 1.0:
            assert clipped.any()
            free = ~np.isclose(cr, 1.0)
            # the unclipped workers keep their relative shares (proportional redistribution)
            np.testing.assert_allclose(cr[free] / raw[free], (cr[free] / raw[free])[0], rtol=1e-12)
            assert (cr[free] >= raw[free]).all()
    np.testing.assert_allclose(assign_ratios(n, 1.0), 1.0, rtol=1e-14)


# ---- DAGC-A ------------------------------------------------------------------------------------

def test_thresholds_closed_form_and_harmonic_mean():
    # (27, 8, 1): q ∝ (9, 4, 1), S ∝ 14: lambda_i = c 14/(3 q_i).
    lam = assign_thresholds([27, 8, 1], 0.6)
    np.testing.assert_allclose(lam, 0.6 * 14 / (3 * np.array([9.0, 4.0, 1.0])), rtol=1e-13)
    n = np.random.default_rng(1).integers(1, 1000, size=9)
    lam = assign_thresholds(n, 0.02)
    assert 9 / np.sum(1 / lam) == pytest.approx(0.02, rel=1e-13)
    order = np.argsort(n)
    assert np.all(np.diff(lam[order]) <= 0)  # more data -> smaller threshold


# ---- integer budgets ---------------------------------------------------------------------------

def test_topk_counts_exact_total_and_bounds():
    assert topk_counts([0.27, 0.12, 0.12], 100).tolist() == [27, 12, 12]
    rng = np.random.default_rng(3)
    for _ in range(20):
        m, d = int(rng.integers(1, 9)), int(rng.integers(1, 300))
        cr = assign_ratios(rng.integers(1, 100, size=m), float(rng.uniform(0.01, 1.0)))
        k = topk_counts(cr, d)
        assert k.sum() == m * max(1, int(np.floor(cr.mean() * d + 0.5)))
        assert k.min() >= 1 and k.max() <= d


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, arg", [(assign_ratios, 0.1), (assign_thresholds, 1.0)])
def test_bad_volumes(fn, arg):
    with pytest.raises(ValueError, match="> 0"):
        fn([3, 0, 1], arg)
    with pytest.raises(ValueError, match="> 0"):
        fn([3, -1], arg)
    with pytest.raises(ValueError, match="non-empty"):
        fn([], arg)
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 2], [3, 4]], arg)
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, np.nan], arg)
    for bad in (5, "abc", None, [True, False], ["a", "b"]):
        with pytest.raises(TypeError):
            fn(bad, arg)


def test_bad_budgets():
    for c in (0.0, -0.1, 1.5, np.inf):
        with pytest.raises(ValueError, match="mean_ratio"):
            assign_ratios([1, 2], c)
    for c in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="mean_threshold"):
            assign_thresholds([1, 2], c)
    with pytest.raises(TypeError):
        assign_ratios([1, 2], "0.1")
    with pytest.raises(TypeError):
        assign_thresholds([1, 2], True)


# ---- the method --------------------------------------------------------------------------------

def _logistic(n=600, d=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d)
    y = np.where(X @ w + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(X, y, l2=1e-3), y


def test_method_params_repr_pickle_and_validation():
    m = pq.methods.DAGC(variant="A", mean=0.01, error_feedback=False)
    assert repr(m) == "DAGC(variant='A', mean=0.01, error_feedback=False)"
    assert eval(repr(m), {"DAGC": pq.methods.DAGC}) == m
    m2 = pickle.loads(pickle.dumps(m))
    assert m2 == m and repr(m2) == repr(m)
    assert m.get_params()["mean"] == 0.01
    with pytest.raises(ValueError, match="variant"):
        pq.methods.DAGC(variant="B", mean=0.1)
    with pytest.raises(ValueError, match="mean"):
        pq.methods.DAGC(variant="R", mean=1.5)
    with pytest.raises(TypeError, match="error_feedback"):
        pq.methods.DAGC(mean=0.1, error_feedback=1)
    with pytest.raises(ValueError, match="one volume per worker"):
        pq.methods.DAGC(mean=0.1, volumes=[3, 2, 1]).compressors_for([5, 5], 10)


def test_compressors_for_variants():
    cs = pq.methods.DAGC(variant="R", mean=0.25).compressors_for([1, 27, 8], 100)
    # targets (17.65, 39.71, 17.65) -> floors (17, 39, 17) + 2 by largest remainder, ties to index 0
    assert [c.k for c in cs] == [18, 40, 17]
    ts = pq.methods.DAGC(variant="A", mean=0.6).compressors_for([27, 8, 1], 100)
    assert all(isinstance(t, pq.Threshold) for t in ts)
    np.testing.assert_allclose([t.tau for t in ts], 0.6 * 14 / (3 * np.array([9.0, 4.0, 1.0])), rtol=1e-13)


def test_acceptance_smoke():
    prob, y = _logistic()
    parts = pq.data.partition(y, 4, scheme="size_skew", skew=10, alpha=0.5, key=0)
    hist = pq.simulate(prob, pq.methods.DAGC(variant="R", mean=0.25), n_workers=4, rounds=2, lr=0.1,
                       partition=parts, key=0)
    assert len(hist.loss) == 3 and np.isfinite(hist.loss).all()


def test_bits_within_uniform_budget_and_per_worker():
    prob, y = _logistic()
    d = prob.dim
    parts = pq.data.partition(y, 5, scheme="size_skew", skew=20, alpha=0.5, key=1)
    kw = dict(n_workers=5, rounds=6, lr=0.5, partition=parts, key=3)
    dagc = pq.simulate(prob, pq.methods.DAGC(variant="R", mean=0.2), **kw)
    uni = pq.simulate(prob, pq.methods.EF(pq.TopK(ratio=0.2), aggregator=pq.WeightedMean("data")), **kw)
    assert dagc.bits_up[-1] <= uni.bits_up[-1]
    k = max(1, int(np.floor(0.2 * d + 0.5)))
    assert uni.bits_up[-1] == 6 * 5 * (32 * k + min(k * int(np.ceil(np.log2(d))), d))
    wb = dagc.worker_bits_up[-1]
    assert wb.shape == (5,) and wb.sum() == dagc.bits_up[-1]
    sizes = np.array([len(p) for p in parts])
    big, small = int(np.argmax(sizes)), int(np.argmin(sizes))
    assert wb[big] > wb[small]
    assert np.all(np.diff(wb[np.argsort(-sizes, kind="stable")]) <= 0)


@pytest.mark.parametrize("variant, mean", [("R", 0.2), ("A", 0.002)])
@pytest.mark.parametrize("ef", [True, False])
def test_runs_with_local_steps_and_decreases_loss(variant, mean, ef):
    prob, y = _logistic()
    parts = pq.data.partition(y, 4, scheme="size_skew", skew=10, alpha=0.5, key=2)
    hist = pq.simulate(prob, pq.methods.DAGC(variant=variant, mean=mean, error_feedback=ef), n_workers=4,
                       rounds=15, lr=1.0, partition=parts, key=0, local_steps=5, local_lr=0.2, batch_size=16)
    assert hist.loss[-1] < hist.loss[0]
    assert hist.worker_bits_up[-1].min() > 0


def test_method_list_of_per_worker_compressors():
    prob, y = _logistic(n=200, d=10)
    cs = [pq.TopK(k=5), pq.Threshold(tau=0.01), pq.chain(pq.TopK(k=3), pq.QSGD(levels=4)), pq.Identity()]
    hist = pq.simulate(prob, pq.methods.EF(cs), n_workers=4, rounds=3, lr=0.5, key=0)
    assert hist.worker_bits_up[-1][3] == 3 * 32 * 10
    with pytest.raises(ValueError, match="one per worker"):
        pq.simulate(prob, pq.methods.EF(cs[:3]), n_workers=4, rounds=1, lr=0.5)
