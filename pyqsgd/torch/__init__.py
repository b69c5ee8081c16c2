"""PyTorch DDP communication hook built from pyqsgd methods and compressors.

``HookState`` + ``comm_hook`` mirror PyTorch's PowerSGD state + hook pair::

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    state = pqt.HookState(pq.methods.EF21(pq.TopK(ratio=0.1)), key=0, lr=0.1)
    ddp_model.register_comm_hook(state, pqt.comm_hook)     # or pqt.register(ddp_model, state)
    opt = torch.optim.SGD(ddp_model.parameters(), lr=0.1)   # plain SGD, the same lr
    ...
    print(state.bits_sent, state.bits_received)

Every rank runs its worker step on the bucket, the encoded messages go over ``all_gather``
(variable lengths), and every rank runs the same (replicated) server step, so all ranks
apply the same update. The hook returns ``step / lr``, so the optimizer's ``p -= lr * grad``
applies exactly the method's step (see ``comm_hook``).

Data path: a bucket becomes the float64 host vector the native method works on in one
conversion (``buffer.to("cpu", torch.float64).numpy()``, fused with the device move for a
CUDA bucket; a float64 CPU bucket is a zero-copy view; float16/bfloat16 buckets are widened,
exactly), and the float64 step is written back into the bucket with one ``copy_`` to its
device and dtype: a bucket never changes dtype. Messages carry float32 values, as in the
simulator, so a float64 bucket's exchanged values have float32 precision (a ``UserWarning``
says so once per state). With NCCL (CUDA buckets) the encoded bytes are moved to the bucket's
device for the all_gather, as NCCL needs; with gloo they stay on the host, CUDA buckets
included. ``per_tensor=True`` compresses each parameter tensor of a bucket separately
(``pq.blockwise``). No Python code touches individual elements. After DDP's one-time bucket
rebuild, a bucket whose parameters were reordered costs one extra gather/scatter (NumPy
fancy indexing) to keep the method's coordinate order fixed.

Not done (yet): all_reduce for linear / shared-seed compressors (everything goes over
all_gather, which is correct for every compressor), overlap of communication with backward
(the hook is synchronous), and downlink compression (no broadcast exists in all-gather DDP).

Importing ``pyqsgd`` never imports torch; this module needs the ``[torch]`` extra.
"""
try:
    import torch as _torch
    import torch.distributed as _dist  # noqa: F401
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError("pyqsgd.torch needs PyTorch >= 2.1: install the extra with "
                      "`pip install 'pyqsgd[torch]'` (or `pip install torch`)") from _err


def _torch_version_ok(version):
    try:
        major, minor = (int(p) for p in version.split("+")[0].split(".")[:2])
    except ValueError:  # pragma: no cover - unusual local builds
        return True
    return (major, minor) >= (2, 1)


if not _torch_version_ok(_torch.__version__):  # pragma: no cover
    raise ImportError(f"pyqsgd.torch needs PyTorch >= 2.1, found {_torch.__version__}; "
                      "`pip install 'pyqsgd[torch]'` upgrades it")

from ._hook import comm_hook, register  # noqa: E402
from ._state import BucketStats, HookState  # noqa: E402

__all__ = ["HookState", "BucketStats", "comm_hook", "register"]
