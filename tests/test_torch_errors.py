"""pyqsgd.torch: bad input gives clear errors, on every rank, without hanging."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pyqsgd.torch needs PyTorch (pip install 'pyqsgd[torch]')")

import pyqsgd as pq  # noqa: E402
import pyqsgd.torch as pqt  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ddp_worker.py")


def test_importing_pyqsgd_does_not_import_torch():
    code = "import sys, pyqsgd; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_import_without_torch_names_the_extra():
    code = ("import sys\n"
            "class NoTorch:  # hides an installed torch\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('No module named ' + repr(name))\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "try:\n    import pyqsgd.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert "pip install 'pyqsgd[torch]'" in out.stdout, out.stdout + out.stderr


def test_hookstate_validates_its_parameters():
    with pytest.raises(TypeError, match="pyqsgd method"):
        pqt.HookState(pq.TopK(k=3), lr=0.1)  # a compressor, not a method
    with pytest.raises(TypeError, match="pyqsgd method"):
        pqt.HookState("EF21", lr=0.1)
    assert pqt.HookState(pq.methods.EF(pq.TopK(k=3))).lr == 1.0  # the default
    with pytest.raises(ValueError, match="lr"):
        pqt.HookState(pq.methods.EF(pq.TopK(k=3)), lr=-1.0)
    with pytest.raises(ValueError, match="downlink"):
        pqt.HookState(pq.methods.DCGD(pq.Identity(), downlink=pq.TopK(k=2)), lr=0.1)
    with pytest.raises(ValueError, match="world_size"):
        pqt.HookState(pq.methods.DCGD(pq.Identity()), lr=0.1, world_size=0)
    with pytest.raises(ValueError, match="format"):
        pqt.HookState(pq.methods.DCGD(pq.Identity()), lr=0.1).load_state_dict({"buckets": {}})
    s = pqt.HookState(pq.methods.EF21(pq.TopK(k=3)), key=5, lr=0.1, world_size=2)
    assert "EF21(TopK(k=3))" in repr(s) and s.bits_sent == 0 and s.buckets == {}
    sd = s.state_dict()
    assert sd["key"] == 5 and sd["world_size"] == 2 and sd["buckets"] == {}


def test_runner_set_state_checks_names_and_sizes():
    runner = pq._core.MethodRunner(pq.methods.EF21(pq.TopK(k=2)).build(4, 2), 2, 4, [0.5, 0.5], [1, 1], [1, 1], 0)
    runner.worker(0, 0, 0.1, np.arange(4.0))
    st = runner.state()
    fresh = pq._core.MethodRunner(pq.methods.EF21(pq.TopK(k=2)).build(4, 2), 2, 4, [0.5, 0.5], [1, 1], [1, 1], 0)
    fresh.set_state(st)
    for k in st:
        np.testing.assert_array_equal(fresh.state()[k], st[k])
    with pytest.raises(ValueError, match="missing state array 'g'"):
        fresh.set_state({"g_workers": st["g_workers"]})
    with pytest.raises(ValueError, match="unknown state array 'h'"):
        fresh.set_state(dict(st, h=np.zeros(4)))
    with pytest.raises(ValueError, match="expected 8"):
        fresh.set_state(dict(st, g_workers=np.zeros(3)))
    vote = pq._core.MethodRunner(pq.methods.SignSGDFV().build(4, 2), 2, 4, [0.5, 0.5], [1, 1], [1, 1], 0)
    vote.set_state({k: v + 1 for k, v in vote.state().items()})
    assert set(vote.state()) == {"N", "A", "weights"} and vote.state()["N"][0] == 1.0


def test_errors_across_ranks_do_not_hang(tmp_path):
    proc = subprocess.run([sys.executable, WORKER, "launch", "errors", "2", str(tmp_path), "120"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in range(2):
        r = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        # float16 / bfloat16 buckets: widened, averaged, rounded back to the bucket's dtype
        for dt in ("torch.float16", "torch.bfloat16"):
            dtype, values = r[dt]
            assert dtype == dt
            np.testing.assert_array_equal(values, np.arange(6) * 0.75)  # mean of 0.25 k and 1.25 k
        for case in ("complex", "int"):
            assert r[case][0] == "TypeError" and "not supported" in r[case][1]
        assert r["not_state"][0] == "TypeError" and "HookState" in r["not_state"][1]
        for case in ("wrong_world", "ddp_wrong_world", "register_wrong_world"):
            assert r[case][0] == "ValueError" and "world size 4" in r[case][1] and "2 ranks" in r[case][1]
        # a NaN gradient on rank 0 only: rank 0 raises ValueError, rank 1 learns of it (no hang)
        assert r["nan_on_rank0"][0] == ("ValueError" if rank == 0 else "RuntimeError")
        assert ("non-finite" if rank == 0 else "rank(s) [0]") in r["nan_on_rank0"][1]
        np.testing.assert_array_equal(r["after"].numpy(), [0.5, 0.5, 0.5])
