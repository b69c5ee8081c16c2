"""The README's quickstart runs as written."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests (installed-only layout)")
def test_readme_quickstart_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python block"
    exec(compile(blocks[0], "README quickstart", "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert "Properties(unbiased=True" in out and "bits_up=" in out


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests (installed-only layout)")
def test_readme_write_your_own_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    own = [b for b in blocks if "pq.Compressor)" in b]
    assert own, "README has no 'Write your own' block"
    env = {}
    exec(compile(own[0], "README write your own", "exec"), env)  # noqa: S102
    df = env["hist"].to_frame()
    assert df.loss.iloc[-1] < df.loss.iloc[0]
    assert (df.bits_up.diff().dropna() == 10 * 8 * (4 + env["prob"].dim)).all()  # 10 workers x payload


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests (installed-only layout)")
def test_readme_torch_problem_block_runs():
    pytest.importorskip("torch", reason="the block needs torch (pip install 'pyqsgd[torch]')")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    torch_blocks = [b for b in blocks if "TorchProblem(" in b]
    assert torch_blocks, "README has no TorchProblem block"
    env = {}
    exec(compile(torch_blocks[0], "README torch problem", "exec"), env)  # noqa: S102
    hist, prob, model = env["hist"], env["prob"], env["model"]
    assert hist.loss[-1] < 0.5 * hist.loss[0] and prob.accuracy(hist.x) > 0.8
    # to_module: a copy holding the trained vector; the user's net keeps its initial weights
    import torch

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().numpy()
    assert model is not env["net"] and (flat == hist.x.astype("float32").astype("float64")).all()
    start = torch.cat([p.detach().reshape(-1) for p in env["net"].parameters()]).double().numpy()
    assert (start == prob.x0).all()
