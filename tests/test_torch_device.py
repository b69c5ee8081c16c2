"""pyqsgd.torch's host/device transfer and backend rules, on CPU (CUDA itself: test_torch_cuda.py).

The helpers are what a CUDA bucket goes through: to_host (device -> float64 host array),
write_back (host step -> bucket, same dtype and device), comm_device (where the byte exchange
runs for NCCL vs gloo). torch.device("cuda:1") is a plain value, so the NCCL/gloo choice is
checked here without a GPU.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pyqsgd.torch needs PyTorch (pip install 'pyqsgd[torch]')")

from pyqsgd.torch import _device as D  # noqa: E402

HALF = (torch.float16, torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *HALF])
def test_to_host_is_exact_float64(dtype):
    buf = (torch.arange(7, dtype=torch.float32) * 0.37 - 1).to(dtype)
    v = D.to_host(buf)
    assert v.dtype == np.float64 and v.shape == (7,)
    np.testing.assert_array_equal(v, buf.double().numpy())  # widening loses nothing


def test_to_host_views_a_float64_cpu_bucket():
    buf = torch.zeros(4, dtype=torch.float64)
    D.to_host(buf)[1] = 5.0
    assert buf[1] == 5.0  # zero-copy: no second float64 buffer of size d


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *HALF])
def test_write_back_keeps_tensor_dtype_and_rounds_explicitly(dtype):
    buf = torch.zeros(5, dtype=dtype)
    step = np.array([0.1, -1 / 3, 1e-3, 2.5, 1 + 2**-20])
    out = D.write_back(buf, step)
    assert out is buf and buf.dtype == dtype  # in place: DDP's bucket views stay valid
    np.testing.assert_array_equal(buf.double().numpy(), torch.from_numpy(step).to(dtype).double().numpy())
    if dtype in HALF:  # rounding to the bucket's dtype really happens (and only there)
        assert buf[4].item() == 1.0


def test_write_back_into_a_2d_buffer_and_wrong_length():
    buf = torch.zeros(2, 3)
    D.write_back(buf, np.arange(6.0))
    np.testing.assert_array_equal(buf.numpy(), np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="length 5 for a bucket of 6"):
        D.write_back(buf, np.arange(5.0))


@pytest.mark.parametrize("backend, device, expected", [
    ("gloo", "cpu", "cpu"),
    ("gloo", "cuda:1", "cpu"),  # gloo all_gather runs on host tensors, CUDA buckets included
    ("nccl", "cuda:1", "cuda:1"),  # NCCL only moves CUDA tensors: the bucket's own device
    ("cpu:gloo,cuda:nccl", "cuda:0", "cuda:0"),
    ("cpu:gloo,cuda:nccl", "cpu", "cpu"),
])
def test_comm_device(backend, device, expected):
    assert D.comm_device(backend, torch.device(device)) == torch.device(expected)


def test_nccl_with_a_cpu_bucket_is_refused():
    with pytest.raises(ValueError, match="NCCL backend needs CUDA gradient buckets.*gloo"):
        D.comm_device("nccl", torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.int32, torch.complex64, torch.float8_e4m3fn])
def test_unsupported_dtypes(dtype):
    with pytest.raises(TypeError, match="not supported"):
        D.check_dtype(dtype)


def test_completed_future_holds_the_bucket():
    buf = torch.ones(3)
    fut = D.completed(buf)
    assert fut.done() and fut.wait() is buf
