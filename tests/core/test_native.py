"""The C++ time loops of the kernels against their Python loops (test_bptt.py
runs every kernel test on both; here: larger shapes, where rows are split for threads,
ragged batches, float32 on both GEMM libraries, and the fallback when they are off)."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import gemm, native

pytestmark = pytest.mark.skipif(
    native.load() is None, reason="the C++ time loops could not be built here (no compiler?)"
)


def _run(layer, x, lengths, loops, monkeypatch):
    """Outputs, final states and every gradient, on the given time loop."""
    with monkeypatch.context() as m:
        if loops == "python":
            m.setitem(native._state, "module", None)
        out, state = layer(x, lengths=lengths)
        flat = [out, *(state if isinstance(state, tuple) else (state,))]
        loss = sum((t * torch.linspace(-1, 1, t.shape[-1], dtype=t.dtype)).sum() for t in flat)
        grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return [t.detach() for t in flat], list(grads)


@pytest.fixture
def nan_empty():
    """torch.empty and the workspace buffers filled with NaN (torch's deterministic mode)."""
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


CELLS = {"LSTM": {}, "GRU": {}, "RNN": {}, "RNN-relu": {"nonlinearity": "relu"}}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
def test_native_equals_python_float64(cell, ragged, monkeypatch):
    """B x H above the row grain (16384 / H rows), so the loops split rows into ranges."""
    torch.manual_seed(3)
    T, B, I, H = 4, 70, 8, 512
    layer = getattr(rnnkit, cell.split("-")[0])(
        I, H, num_layers=2, bidirectional=True, **CELLS[cell]
    )
    layer = layer.double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.randint(1, T + 1, (B,)) if ragged else None
    fast, g_fast = _run(layer, x, lengths, "native", monkeypatch)
    slow, g_slow = _run(layer, x, lengths, "python", monkeypatch)
    for a, b in zip(fast + g_fast, slow + g_slow, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("lib", ["onednn", "aten", "mkl_packed"])
def test_native_equals_python_float32(cell, lib, monkeypatch, nan_empty):
    """float32 with every product on oneDNN (reordered weights), on ATen (MKL's plain GEMM),
    or the step products on MKL's packed GEMM. New tensors start as NaN, so a padded row read
    before it is written shows. The tanh RNN's C++ loop computes tanh(z) as 2 sigmoid(2z) - 1
    (native.cpp), exact to an ulp of 1 rather than of tanh(z) near z = 0: its results are
    1.2e-5 from float64 here where the Python loop's are 1.2e-6, hence its wider tolerance."""
    if lib == "onednn" and not gemm.ONEDNN:
        pytest.skip("this torch has no oneDNN")
    if lib == "mkl_packed" and gemm._MKL_REORDER is None:
        pytest.skip("this torch has no MKL packed GEMM")
    min_flops = 0 if lib == "onednn" else gemm.NEVER
    monkeypatch.setattr(gemm, "MIN_FLOPS", min_flops)
    monkeypatch.setattr(gemm, "MIN_FLOPS_PACKED", min_flops)
    monkeypatch.setattr(gemm, "MIN_WEIGHT", gemm.NEVER)
    monkeypatch.setattr(gemm, "MKL_PACKED_MIN_ROWS", 1 if lib == "mkl_packed" else gemm.NEVER)
    torch.manual_seed(4)
    layer = getattr(rnnkit, cell)(6, 32)
    x = torch.randn(40, 5, 6, requires_grad=True)  # 40 steps: weights are reordered
    lengths = torch.tensor([40, 17, 40, 1, 33])
    fast, g_fast = _run(layer, x, lengths, "native", monkeypatch)
    slow, g_slow = _run(layer, x, lengths, "python", monkeypatch)
    tol = 5e-5 if cell == "RNN" else 1e-5
    for a, b in zip(fast + g_fast, slow + g_slow, strict=True):
        assert_close(a, b, rtol=tol, atol=tol)


def test_inference_uses_native_loops_and_matches(monkeypatch):
    """No-grad calls (chunked projections, rolling buffers) on both loops."""
    monkeypatch.setattr(rnnkit.bptt.common, "CHUNK", 1)
    torch.manual_seed(5)
    for cell in ("LSTM", "GRU", "RNN"):
        layer = getattr(rnnkit, cell)(3, 16).double()
        x = torch.randn(9, 4, 3, dtype=torch.float64)
        lengths = torch.tensor([9, 2, 5, 9])
        with torch.no_grad():
            fast = layer(x, lengths=lengths)
            with monkeypatch.context() as m:
                m.setitem(native._state, "module", None)
                slow = layer(x, lengths=lengths)
        assert_close(fast[0], slow[0], rtol=0, atol=1e-12)


def test_rnnkit_native_0_keeps_the_python_loops():
    """RNNKIT_NATIVE=0: nothing is built or loaded, and the layers still run."""
    code = (
        "import torch, rnnkit; from rnnkit.bptt import native; "
        "assert native.load() is None; "
        "y, _ = rnnkit.LSTM(2, 3)(torch.randn(4, 1, 2)); print(tuple(y.shape))"
    )
    env = {"RNNKIT_NATIVE": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4, 1, 3)"


def _build_directory():
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(native._name(), False))


LOAD = "from rnnkit.bptt import native; print(native.load() is not None)"


def test_a_killed_builder_leaves_no_process_waiting():
    """A process killed (SIGKILL) while it holds the build lock, and torch's baton file that a
    build killed inside torch.utils.cpp_extension leaves behind, do not make a later process
    wait: it opens the built module at once (torch's own baton would wait for ever)."""
    where = _build_directory()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from rnnkit.bptt import native; "
         "lock = native._build_lock(Path(sys.argv[1])); lock.__enter__(); "
         "print('held', flush=True); time.sleep(600)", str(where)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        (where / "lock").touch()  # the baton of a killed torch build
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        done = subprocess.run(
            [sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "True"
    finally:
        holder.kill()
        (where / "lock").unlink(missing_ok=True)


def test_the_build_is_named_by_its_source():
    """An edited native.cpp is a different module: it never loads a build of another
    source, and a build in use is never replaced under a running process."""
    name = native._name()
    assert name.startswith("rnnkit_native_") and len(name.rsplit("_", 1)[1]) == 12
    assert (_build_directory() / f"{name}.so").exists()


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 2e-7), (torch.float64, 1e-15)])
def test_loops_sigmoid_matches_torch(dtype, atol):
    """The loops' own sigmoid (float: a polynomial exp, vectorised): within a few float
    ulps of torch.sigmoid over [-100, 100], saturating at +-inf, NaN kept."""
    x = torch.linspace(-100, 100, 200_001, dtype=dtype)
    y = x.clone()
    native.load().sigmoid_(y)
    assert_close(y, torch.sigmoid(x), rtol=0, atol=atol)
    edge = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0], dtype=dtype)
    native.load().sigmoid_(edge)
    assert edge[0].isnan() and edge[1] == 1 and 0 <= edge[2] < 1e-37 and edge[3] == 0.5
