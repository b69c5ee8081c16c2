"""Where the hook's data lives: bucket (any device, any float dtype) -> float64 host array for the
native method -> bucket again; and which device the byte exchange runs on (NCCL or gloo).

Dtype rule, explicit at both ends: the method runs in float64 on the host, and the compressors'
messages carry float32 values (their wire format, as in the simulator). So

* float32 buckets lose nothing on the way in (float32 -> float64 is exact);
* float16 / bfloat16 buckets are widened (exact) and the step is rounded back to the bucket's
  dtype with one explicit ``copy_``: the bucket keeps its dtype;
* float64 buckets stay float64 (a zero-copy view on the host), but whatever a compressor
  sends is float32 on the wire, so the exchanged values carry float32 precision. This is
  announced once per ``HookState`` with a ``UserWarning`` rather than done silently.
"""
import numpy as np
import torch

__all__ = ["SUPPORTED", "check_dtype", "to_host", "write_back", "comm_device", "completed"]

SUPPORTED = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

FLOAT64_NOTE = ("pyqsgd.torch: float64 gradient bucket: the method runs in float64, but compressed messages "
                "carry float32 values on the wire (the compressors' format, as in pq.simulate); the bucket and "
                "the step written into it stay float64")


def check_dtype(dtype):
    if dtype not in SUPPORTED:
        raise TypeError(f"pyqsgd.torch: gradient buckets of dtype {dtype} are not supported; pyqsgd methods work "
                        "on real floating-point gradients (float32, float64, and float16/bfloat16, which are "
                        "widened to float64 and rounded back)")


def to_host(buf):
    """The bucket as a float64 NumPy array on the host.

    One conversion, fused with the device move for a CUDA bucket (``.to(cpu, float64)``, which
    waits for the gradient to be ready); a float64 CPU bucket is returned as a zero-copy view.
    """
    t = buf.detach()
    if t.device.type != "cpu" or t.dtype != torch.float64:
        t = t.to(device="cpu", dtype=torch.float64)
    return t.numpy()


def write_back(buf, step):
    """Writes the float64 host array ``step`` into ``buf`` in place, converting to the bucket's
    dtype and device in one ``copy_``; returns ``buf`` (same tensor, same dtype, same device)."""
    src = torch.from_numpy(np.ascontiguousarray(step, dtype=np.float64))
    if src.numel() != buf.numel():
        raise ValueError(f"pyqsgd.torch: step of length {src.numel()} for a bucket of {buf.numel()} values")
    buf.copy_(src.view(buf.shape))
    return buf


def comm_device(backend, device):
    """Device of the tensors the exchange sends.

    NCCL only moves CUDA tensors, so with NCCL (alone, or in a ``"cpu:gloo,cuda:nccl"`` backend)
    and a CUDA bucket the (status, length) header and the message bytes go to the bucket's
    device. gloo's all_gather works on CPU tensors, so everything else (gloo with CPU or CUDA
    buckets) communicates from the host, where the encoded bytes already are.
    """
    device = torch.device(device)
    if device.type == "cuda" and "nccl" in str(backend).lower():
        return device
    if "nccl" in str(backend).lower() and "gloo" not in str(backend).lower():
        raise ValueError(f"pyqsgd.torch: the NCCL backend needs CUDA gradient buckets, got a bucket on {device}; "
                         "use gloo for CPU training (dist.init_process_group('gloo'))")
    return torch.device("cpu")


def completed(buf):
    """A Future already holding ``buf``. For CUDA buckets it is created with the bucket's
    device, so DDP synchronises its stream with the (already finished) copy into ``buf``."""
    fut = torch.futures.Future(devices=[buf.device]) if buf.device.type == "cuda" else torch.futures.Future()
    fut.set_result(buf)
    return fut
