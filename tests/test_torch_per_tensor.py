"""HookState(..., per_tensor=True): each parameter tensor of a DDP bucket compressed separately,
message for message and bit for bit what ``pq.blockwise(compressor, sizes)`` produces."""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pyqsgd.torch needs PyTorch (pip install 'pyqsgd[torch]')")

import pyqsgd as pq  # noqa: E402
import pyqsgd.torch as pqt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ddp_worker as W  # noqa: E402

sys.path.pop(0)

needs_blockwise = pytest.mark.skipif(not hasattr(pq, "blockwise"), reason="pq.blockwise is not built yet")


@pytest.mark.parametrize("method", [pq.methods.SignSGDMV(), pq.methods.SignSGDFV(), pq.methods.LESignSGD(),
                                    pq.methods.DAGC("R", mean=0.1)], ids=repr)
def test_methods_that_cannot_be_split_are_refused(method):
    with pytest.raises(ValueError, match=r"per_tensor=True cannot split .*per_tensor=False"):
        pqt.HookState(method, per_tensor=True)
    assert pqt.HookState(method).per_tensor is False  # fine without per_tensor


def test_checkpoints_do_not_cross_per_tensor():
    method = pq.methods.EF(pq.TopK(k=2))
    whole = pqt.HookState(method, world_size=2).state_dict()
    with pytest.raises(ValueError, match="per_tensor=False, this state per_tensor=True"):
        pqt.HookState(method, world_size=2, per_tensor=True).load_state_dict(whole)
    assert pqt.HookState(method, world_size=2, per_tensor=True).state_dict()["per_tensor"] is True


def test_per_tensor_must_be_a_bool():
    with pytest.raises(TypeError, match="per_tensor must be a bool"):
        pqt.HookState(pq.methods.EF(pq.TopK(k=2)), per_tensor=1)


@needs_blockwise
def test_a_tensor_the_compressor_cannot_take_names_per_tensor_and_the_sizes():
    # What the hook calls on a bucket's first use: (index, d, parameter shapes, data pointers).
    state = pqt.HookState(pq.methods.EF(pq.TopK(k=2)), per_tensor=True, world_size=2)
    with pytest.raises(ValueError, match=r"per_tensor=True: bucket 0 holds tensors of sizes \[4, 1\].*k=2"):
        state._bucket(0, 5, [(4,), (1,)], [10, 20])
    with pytest.raises(ValueError, match=r"per_tensor=True needs the bucket's parameters"):
        state._bucket(0, 5, None, None)
    b, _ = pqt.HookState(pq.methods.EF(pq.TopK(k=1)), per_tensor=True, world_size=2)._bucket(0, 5, [(4,), (1,)],
                                                                                            [10, 20])
    assert b.d == 5


@needs_blockwise
def test_split_wraps_every_compressor_and_leaves_the_method_alone():
    from pyqsgd.torch._split import split

    m = pq.methods.EF21(pq.TopK(k=2))
    s = split(m, [3, 4])
    assert repr(s.compressor) == repr(pq.blockwise(pq.TopK(k=2), [3, 4]))
    assert repr(m) == "EF21(TopK(k=2))" and type(s) is pq.methods.EF21
    per_worker = split(pq.methods.DCGD([pq.TopK(k=1), pq.TopK(k=2)]), [3, 4])
    assert [repr(c) for c in per_worker.compressor] == [repr(pq.blockwise(pq.TopK(k=k), [3, 4])) for k in (1, 2)]
    assert repr(split(pq.methods.EFSignSGD(), [5]).compressor) == repr(pq.blockwise(pq.ScaledSign(), [5]))


@pytest.fixture(scope="module")
def per_tensor_runs(tmp_path_factory):
    """One 2-rank launch of the per_tensor scenario, shared by the two tests that read it."""
    return W.run("per_tensor", 2, tmp_path_factory.mktemp("per_tensor"))


@needs_blockwise
def test_messages_and_bits_are_blockwise(per_tensor_runs):
    res = per_tensor_runs
    sizes = [int(np.prod(s)) for s in W.PER_TENSOR_SHAPES]
    for name, method in W.per_tensor_methods().items():
        c = pq.blockwise(method.compressor, sizes)
        # Round 0 with zero state: every method compresses the gradient itself (EF: lr g, lr = 1).
        msgs = [c.compress(W.per_tensor_vector(r).astype(np.float32), key=pq.Key(seed=9, round=0, worker=r))
                for r in range(2)]
        for rank, r in enumerate(res):
            got = r[name]
            assert got["blocks"] == tuple(sizes), name
            assert got["payloads"] == [m.to_bytes() for m in msgs], name  # byte for byte
            assert got["bits_sent"] == msgs[rank].bits and got["bits_received"] == msgs[1 - rank].bits, name
        if name.startswith("dcgd"):  # the step is the mean of the decoded blockwise messages
            mean = (c.decompress(msgs[0]).astype(np.float64) + c.decompress(msgs[1])) / 2
            np.testing.assert_allclose(res[0][name]["step"], mean, rtol=1e-6, err_msg=name)
    # per tensor really differs from one TopK over the bucket: k = 2 in each of the 3 tensors
    whole = pq.TopK(k=2).compress(W.per_tensor_vector(0).astype(np.float32)).bits
    assert res[0]["dcgd_topk"]["bits_sent"] > whole


@needs_blockwise
def test_ddp_training_with_per_tensor(per_tensor_runs):
    res = per_tensor_runs
    for r in res:
        t = r["ddp"]
        assert t["after"] < 0.7 * t["before"] and t["iteration"] == 25
        assert sorted(t["blocks"]) == t["sizes"]  # one block per parameter tensor
        per_msg = pq.blockwise(pq.TopK(k=3), list(t["blocks"])).compress(np.ones(sum(t["sizes"]))).bits
        assert t["bits_sent"] == 25 * per_msg and t["bits_received"] == 25 * per_msg


@needs_blockwise
def test_parity_with_the_simulator_on_the_same_blocks(tmp_path):
    world, steps = 2, 8
    res = W.run("per_tensor_parity", world, tmp_path)
    A, b = W.lsq_data(world)
    n_per = A.shape[0] // world
    shards = [np.arange(r * n_per, (r + 1) * n_per) for r in range(world)]
    columns = {"weight": A, "bias": np.ones((A.shape[0], 1), dtype=np.float32)}
    for name, (method, lr) in W.per_tensor_parity_methods().items():
        got = res[0][name]
        A_aug = np.hstack([columns[n] for n in got["order"]])  # x in the bucket's tensor order
        blockwise_method = type(method)(pq.blockwise(method.compressor, list(got["blocks"])))
        hist = pq.simulate(pq.problems.LeastSquares(A_aug, b), blockwise_method, n_workers=world, partition=shards,
                           rounds=steps, lr=lr, key=11)
        bits_up = int(hist.to_frame()["bits_up"].iloc[-1])
        for r in res:
            np.testing.assert_allclose(r[name]["x"], hist.x, rtol=1e-5, atol=1e-6, err_msg=name)
            assert r[name]["bits_sent"] + r[name]["bits_received"] == bits_up, name
