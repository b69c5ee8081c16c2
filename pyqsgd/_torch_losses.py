"""The loss names :class:`pyqsgd.problems_torch.TorchProblem` accepts, as torch functions: the
mean over a batch and the per-sample values whose mean it is (the weighted, padded batches of
the vmap path sum per-sample losses). torch is imported in the functions: importing this
module alone must not need it (only :mod:`pyqsgd.problems_torch` calls them)."""
from __future__ import annotations

CLASSIFICATION = ("cross_entropy", "nll")
LOSSES = CLASSIFICATION + ("mse",)


def mean_named(name, out, y):
    import torch.nn.functional as F

    if name == "cross_entropy":
        return F.cross_entropy(out, y)
    if name == "nll":
        return F.nll_loss(out, y)
    return F.mse_loss(out, y)


def each_named(name, out, y):
    """Per-sample losses whose mean is :func:`mean_named` (mse: mean over a sample's outputs)."""
    import torch.nn.functional as F

    if name == "cross_entropy":
        return F.cross_entropy(out, y, reduction="none")
    if name == "nll":
        return F.nll_loss(out, y, reduction="none")
    return ((out - y) ** 2).reshape(out.shape[0], -1).mean(dim=1)
