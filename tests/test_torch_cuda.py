"""pyqsgd.torch with CUDA buckets: gloo (exchange on the host) and NCCL (exchange on the device).

Skipped without a GPU; the device/dtype rules themselves are tested on CPU in
test_torch_device.py. With one GPU both ranks share it over gloo; NCCL needs one GPU per rank.
"""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pyqsgd.torch needs PyTorch (pip install 'pyqsgd[torch]')")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: GPU buckets are tested on machines with a GPU", allow_module_level=True)

import pyqsgd as pq  # noqa: E402
from pyqsgd.torch import _device as D  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ddp_worker as W  # noqa: E402

sys.path.pop(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_round_trip_keeps_device_and_dtype(dtype):
    buf = (torch.arange(6, dtype=torch.float32) / 3).to(device="cuda", dtype=dtype)
    v = D.to_host(buf)
    assert v.dtype == np.float64
    np.testing.assert_array_equal(v, buf.double().cpu().numpy())
    out = D.write_back(buf, 2 * v)
    assert out is buf and buf.device.type == "cuda" and buf.dtype == dtype
    np.testing.assert_array_equal(buf.double().cpu().numpy(), torch.from_numpy(2 * v).to(dtype).double().numpy())


def _check(res):
    d = 16 * 12 + 12 + 12 * 3 + 3
    for r in res:
        np.testing.assert_allclose(r["got"], r["ref"], rtol=1e-5, atol=1e-6)
        assert r["devices"] == ["cuda"]
        assert r["ef_bits"] == 10 * pq.TopK(k=20).compress(np.ones(d)).bits
        dtype, device, values = r["half"]
        assert (dtype, device) == ("torch.float16", "cuda")
        np.testing.assert_array_equal(values, np.arange(6) * 1.5)  # mean of k and 2k


def test_gloo_with_cuda_buckets(tmp_path):
    _check(W.run("cuda", 2, tmp_path))


@pytest.mark.skipif(torch.cuda.device_count() < 2 or not torch.distributed.is_nccl_available(),
                    reason="NCCL needs one GPU per rank (2 GPUs) and an NCCL build of torch")
def test_nccl_with_cuda_buckets(tmp_path):
    _check(W.run("cuda", 2, tmp_path, env={"PYQSGD_TEST_BACKEND": "nccl"}))
