"""DAGC: data-aware per-worker compression under volume skew (ALGORITHMS.md §4.5).

Lu et al., "DAGC: Data-Aware Adaptive Gradient Compression", IEEE TMC 2024 (arXiv 2311.07324).
Workers with more data get milder compression, chosen from the data volumes n_i alone:

* :func:`assign_ratios` (DAGC-R): per-worker TopK ratios cr_i averaging the budget c̄, by one
  of two rules: ``rule="clipped"`` (default; sorted, ratios clipped to 1 and water-filled) or
  ``rule="paper"`` (the authors' public ``DAGC_R`` assignment, reproduced exactly: input order,
  no clipping).
* :func:`assign_thresholds` (DAGC-A): per-worker hard thresholds lambda_i whose harmonic mean is c̄.
* :func:`topk_counts`: integer TopK sizes k_i from ratios with sum k_i equal to the uniform
  budget m max(1, round(c̄ d)), so DAGC-R never sends more bits than uniform TopK(ratio=c̄).

Both assignments return values in the caller's worker order. The training method is
:class:`pyqsgd.methods.DAGC`.

Notation (1-based, as in the spec): p_i = n_i / sum n (sorted decreasing, p_1 largest, under
``rule="clipped"``; in the caller's order under ``rule="paper"``), q_i = p_i^(2/3),
S = sum q_i, m workers.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._validate import check_float, check_int

__all__ = ["assign_ratios", "assign_thresholds", "topk_counts", "ratio_search", "RULES"]

#: The DAGC-R assignment rules of :func:`assign_ratios`.
RULES = ("clipped", "paper")


def _volumes(volumes, owner, what="volumes"):
    """Validated float64 1-D array of positive, finite volumes (one per worker)."""
    if isinstance(volumes, (str, bytes, bool, np.bool_, numbers.Number)) or volumes is None:
        raise TypeError(f"{owner}: {what} must be a 1-D array of per-worker data volumes, got {volumes!r}")
    try:
        arr = np.asarray(volumes)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{owner}: {what} must be a 1-D numeric array, got {type(volumes).__name__}") from e
    if arr.dtype == bool or arr.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: {what} must be real numbers (sample counts), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{owner}: {what} must be 1-D (one entry per worker), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{owner}: {what} must be non-empty (one entry per worker)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{owner}: {what} must be finite")
    if (arr <= 0).any():
        bad = int(np.flatnonzero(arr <= 0)[0])
        raise ValueError(f"{owner}: every entry of {what} must be > 0 (a worker without data cannot be assigned a "
                         f"ratio), got {what}[{bad}]={arr[bad]:g}")
    return arr


def _check_rule(owner, rule):
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"{owner}: rule must be 'clipped' (sorted, clipped to 1, water-filled) or 'paper' "
                         f"(the authors' DAGC_R: input order, no clipping), got {rule!r}")
    return rule


def _ordered(n, rule):
    """The search order and the ordered n, p, q: stable decreasing (equal volumes keep the
    caller's order) for "clipped", the caller's order for "paper"."""
    order = np.argsort(-n, kind="stable") if rule == "clipped" else np.arange(n.size)
    ns = n[order]
    p = ns / ns.sum()
    return order, ns, p, p ** (2.0 / 3.0)


def ratio_search(volumes, rule="clipped"):
    """The DAGC-R search of ALGORITHMS.md §4.5, before scaling and clipping.

    The workers are put in an order first: decreasing volume (stable) for ``rule="clipped"``,
    the caller's order, unsorted, for ``rule="paper"`` (what the authors' ``DAGC_R`` does).
    Then, in that order, for each candidate j = m, ..., 1 (1-based; candidates j < m whose
    volume equals worker j + 1's are skipped, they give the same split as j + 1):
    ref = m if j != m else m - 1, Q = (S - q_j)/q_ref, r_j = 1/(1 + Q), r_i = q_i/(q_ref (1 + Q))
    for i != j, score phi_j = p_j (1 + Q) + p_ref Q (1 + Q). The smallest score wins (on an
    exact tie the candidate met first, i.e. the larger j). For every candidate sum r_i = 1 and
    r_j = r_ref (worker j is pinned to the reference worker's share, the others are
    proportional to q_i); "ref" is the last worker in the order, or the second last when j is
    itself the last. Sorted decreasing ("clipped") the reference is the smallest worker; on
    increasing volumes ("paper" with the fidelity issue's inputs) it is the largest, the
    difference the fidelity check found. m = 1: r = (1,). Equal volumes: only j = m is tried and r is uniform.

    Returns
    -------
    dict with ``order`` (the search order as caller indices; identity for "paper"), ``p``,
    ``q`` (in that order), ``candidates`` (list of (j, ref, Q, phi), 1-based), ``best``
    (1-based j or None for m = 1) and ``r`` (shares in that order, summing to 1).

    >>> from pyqsgd.dagc import ratio_search
    >>> out = ratio_search([27, 8, 1])
    >>> out["best"], [round(float(v) * 17, 9) for v in out["r"]]
    (3, [9.0, 4.0, 4.0])
    >>> [(j, round(phi, 6)) for j, _, _, phi in ratio_search([1, 1, 8, 8], rule="paper")["candidates"]]
    [(4, 2.777778), (2, 3.430556)]
    """
    n = _volumes(volumes, "ratio_search")
    rule = _check_rule("ratio_search", rule)
    order, ns, p, q = _ordered(n, rule)
    m = n.size
    if m == 1:
        return {"order": order, "p": p, "q": q, "candidates": [], "best": None, "r": np.ones(1)}
    S = q.sum()
    best, best_phi, best_r, cands = None, np.inf, None, []
    for j in range(m, 0, -1):  # 1-based
        if j < m and ns[j - 1] == ns[j]:
            continue
        ref = m if j != m else m - 1
        qj, qr, pr = q[j - 1], q[ref - 1], p[ref - 1]
        Q = (S - qj) / qr
        phi = p[j - 1] * (1.0 + Q) + pr * Q * (1.0 + Q)
        cands.append((j, ref, float(Q), float(phi)))
        if phi < best_phi:
            r = q / (qr * (1.0 + Q))
            r[j - 1] = 1.0 / (1.0 + Q)
            best, best_phi, best_r = j, phi, r
    return {"order": order, "p": p, "q": q, "candidates": cands, "best": best, "r": best_r}


def _water_fill(shares, total, cap=1.0):
    """Allocations proportional to ``shares`` summing to ``total``, each <= cap; the excess of
    capped entries is redistributed to the others in proportion to their shares (repeated until
    no entry exceeds the cap). Needs total <= cap * len(shares)."""
    out = np.zeros_like(shares)
    free = np.ones(shares.size, dtype=bool)
    budget = total
    while True:
        alloc = shares[free] * (budget / shares[free].sum())
        over = alloc > cap
        if not over.any():
            out[free] = alloc
            return out
        idx = np.flatnonzero(free)[over]
        out[idx] = cap
        free[idx] = False
        budget -= cap * idx.size
        if not free.any() or budget <= 0:
            return out


def assign_ratios(volumes, mean_ratio, rule="clipped"):
    """DAGC-R: per-worker TopK ratios from data volumes (ALGORITHMS.md §4.5).

    cr_i = r_i m c̄ with r from :func:`ratio_search`, so the ratios average to c̄ = ``mean_ratio``
    under both rules. The rules differ in the search order and in what happens above 1:

    ``rule="clipped"`` (default)
        The search runs on the volumes sorted decreasing, so the result does not depend on how
        the workers are numbered (permuting the volumes permutes the ratios). Ratios above 1
        are clipped to 1 and the excess is redistributed to the other workers in proportion to
        their r_i (water-filling, repeated until none exceeds 1); the average stays c̄ (possible
        since c̄ <= 1; c̄ = 1 gives all ones). Every ratio is then a valid TopK ratio in (0, 1].
        This rule exists because the paper rule is not always feasible: over 300 random cases
        (see ``tests/data/fidelity.json``, "dagc_r_infeasible") it gave some ratio > 1, a TopK
        keeping more than d coordinates, in 10 of 300 (the fidelity issue's own sampling: 39).

    ``rule="paper"``
        The authors' public ``DAGC_R`` assignment, reproduced exactly (checked against their
        figures, ``tests/data/fidelity.json``): no sorting, the search runs in the caller's
        order, and nothing is clipped, so ratios may exceed 1 (the caller decides what to do;
        :class:`pyqsgd.methods.DAGC` raises). The result depends on the input order: volumes
        (1, 1, 8, 8) with c̄ = 0.1 give (.04, .04, .16, .16), but the same volumes as
        (8, 8, 1, 1) give (.229, .057, .057, .057) = (4, 1, 1, 1) 0.4/7: the worker pinned by
        the search takes the *last* worker's share, whatever its size; fed increasing volumes,
        the pinned worker shares the largest worker's ratio.

    Edge cases (both rules): one worker gets c̄; equal volumes give c̄ for everyone; m = 2
    always gives c̄ for both (the pinned worker j takes the reference worker's share, half
    each). Ties: only the last worker of a group of equal volumes is a candidate, and when it
    wins it alone is pinned, so equal volumes can get different ratios, as the search implies:
    under "clipped" volumes (8, 8, 1, 1) give r = (4, 1, 1, 1)/7 (the second 8 is pinned to the
    smallest share); within a tie group the sort is stable, so the caller's later index is the
    one pinned. Under log-spaced volumes (no ties) the "clipped" search picks j = m and the
    ratios are non-increasing in volume.

    Parameters
    ----------
    volumes : array_like, shape (m,)
        Data volumes n_i > 0 (sample counts), in any worker order ("paper": the order matters).
    mean_ratio : float in (0, 1]
        The budget c̄: the average TopK ratio.
    rule : {"clipped", "paper"}, default "clipped"

    Returns
    -------
    np.ndarray, float64, shape (m,)
        cr_i in the caller's worker order, mean c̄ (up to rounding); in (0, 1] under "clipped",
        in (0, m c̄) under "paper".

    Examples
    --------
    >>> from pyqsgd.dagc import assign_ratios
    >>> (assign_ratios([1, 27, 8], 0.17) * 100).round(6).tolist()  # r = (4, 9, 4)/17 for (1, 27, 8)
    [12.0, 27.0, 12.0]
    >>> assign_ratios([5, 5, 5], 0.1).round(12).tolist()
    [0.1, 0.1, 0.1]
    >>> assign_ratios([1, 1, 8, 8], 0.1, rule="paper").round(12).tolist()
    [0.04, 0.04, 0.16, 0.16]
    >>> (assign_ratios([8, 8, 1, 1], 0.1, rule="paper") * 70).round(9).tolist()  # order-dependent
    [16.0, 4.0, 4.0, 4.0]
    """
    n = _volumes(volumes, "assign_ratios")
    c = check_float("assign_ratios", "mean_ratio", mean_ratio, low=0.0, high=1.0, low_open=True)
    rule = _check_rule("assign_ratios", rule)
    m = n.size
    res = ratio_search(n, rule)
    if rule == "paper":
        return res["r"] * (m * c)
    cr_sorted = _water_fill(res["r"], m * c)
    out = np.empty(m)
    out[res["order"]] = cr_sorted
    return out


def assign_thresholds(volumes, mean_threshold):
    """DAGC-A: per-worker hard thresholds lambda_i = c̄ S / (m q_i) (ALGORITHMS.md §4.5).

    More data means a smaller threshold (lambda_i is decreasing in n_i, lambda_i ∝ n_i^(-2/3)),
    and the harmonic mean m / sum(1/lambda_i) equals c̄ = ``mean_threshold``. The formula is
    per worker, so no sorting is involved; m = 1 and equal volumes give c̄ for everyone.

    Parameters
    ----------
    volumes : array_like, shape (m,)
        Data volumes n_i > 0, in any worker order.
    mean_threshold : float > 0
        The harmonic-mean threshold c̄ (in the units of the vectors being compressed).

    Returns
    -------
    np.ndarray, float64, shape (m,), in the caller's worker order.

    Examples
    --------
    >>> from pyqsgd.dagc import assign_thresholds
    >>> assign_thresholds([1, 8], 0.5).round(12).tolist()  # q ∝ (1, 4): lambda = c̄ 5/(2 q_i)
    [1.25, 0.3125]
    """
    n = _volumes(volumes, "assign_thresholds")
    c = check_float("assign_thresholds", "mean_threshold", mean_threshold, low=0.0, low_open=True)
    q = (n / n.sum()) ** (2.0 / 3.0)
    return c * q.sum() / (n.size * q)


def topk_counts(ratios, d, total=None):
    """Integer TopK sizes k_i in [1, d] for per-worker ratios, with an exact total.

    ``total`` defaults to m max(1, round(mean(ratios) d)), the number of values uniform
    TopK(ratio=mean) sends, so the per-worker bits (32 k_i + indices) never exceed the uniform
    budget. Targets t_i = ratios_i total / sum(ratios) are rounded by largest remainder (ties to
    the smaller worker index) within [1, d].

    >>> from pyqsgd.dagc import topk_counts
    >>> topk_counts([0.27, 0.12, 0.12], 100).tolist()
    [27, 12, 12]
    """
    r = _volumes(ratios, "topk_counts", "ratios")
    if (r > 1.0).any():
        i = int(np.argmax(r))
        raise ValueError(f"topk_counts: ratios must be TopK ratios in (0, 1], got ratios[{i}]={r[i]:g}")
    d = check_int("topk_counts", "d", d, low=1)
    m = r.size
    if total is None:
        total = m * max(1, int(np.floor(r.mean() * d + 0.5)))
    total = check_int("topk_counts", "total", total, low=m, high=m * d)
    t = np.minimum(r * (total / r.sum()), float(d))
    k = np.clip(np.floor(t), 1, d).astype(np.int64)
    rest = t - k
    while k.sum() != total:
        if k.sum() < total:
            room = np.flatnonzero(k < d)
            i = room[np.argmax(rest[room])]
            k[i] += 1
        else:
            room = np.flatnonzero(k > 1)
            i = room[np.argmin(rest[room])]
            k[i] -= 1
        rest[i] = t[i] - k[i]
    return k
