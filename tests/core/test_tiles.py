"""The C++ loops' tiled step products (native_tile.h: out += x W^T without a GEMM library, for
few rows and small weights) against the GEMM path and the float64 Python loops: outputs, final
states and every gradient, for the three cells, ragged batches, both directions, stacked layers,
the LSTM's projection and the regularisers' masks."""

import copy

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit.bptt import native

MODULE = native.load()
pytestmark = pytest.mark.skipif(
    MODULE is None or MODULE.tile_width() == 0,
    reason="no C++ loops here, or a CPU without AVX2 + FMA (no tiles)",
)


def _run(layer, x, lengths, tiles):
    """Outputs, final states and every gradient, with the tiles on or off."""
    was = MODULE.set_tiled(tiles)
    try:
        out, state = layer(x, lengths=lengths)
        flat = [out, *(state if isinstance(state, tuple) else (state,))]
        loss = sum((t * torch.linspace(-1, 1, t.shape[-1], dtype=t.dtype)).sum() for t in flat)
        grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    finally:
        MODULE.set_tiled(was)
    return [t.detach() for t in flat] + [g.detach() for g in grads]


def _python64(layer, x, lengths, monkeypatch):
    """The same in float64 on the Python loops: the reference."""
    ref = copy.deepcopy(layer).double()
    with monkeypatch.context() as m:
        m.setitem(native._state, "module", None)
        return _run(ref, x.detach().double().requires_grad_(), lengths, False)


SHAPES = [(16, 64), (7, 64), (1, 128), (12, 128)]  # (B, H): rows left over by the tiles too


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize(("B", "H"), SHAPES)
def test_tiles_match_the_gemm_path_and_float64(cell, B, H, monkeypatch):
    """Both directions of two layers, ragged lengths: the tiles against the GEMM path in float32
    (the sums run in another order: 1e-5), both against the float64 Python loops."""
    torch.manual_seed(B * H)
    layer = getattr(rnnkit, cell)(8, H, num_layers=2, bidirectional=True)
    T = 30
    x = torch.randn(T, B, 8, requires_grad=True)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    assert MODULE.tiled(B, (4 if cell == "LSTM" else 3 if cell == "GRU" else 1) * H, H)
    tiled = _run(layer, x, lengths, True)
    plain = _run(layer, x, lengths, False)
    ref = _python64(layer, x, lengths, monkeypatch)
    tol = 1e-4 if cell == "RNN" else 2e-5  # RNN: 2 sigmoid(2z) - 1 (test_native.py)
    for a, b, r in zip(tiled, plain, ref, strict=True):
        scale = 1 + r.abs().max().item()
        assert_close(a, b, rtol=0, atol=tol * scale)
        assert_close(a.double(), r, rtol=0, atol=tol * scale)


def test_lstm_projection_takes_the_tiles(monkeypatch):
    """proj_size 64 of H 128: W_hh (4H, P) forward and (P, 4H) backward on the tiles."""
    torch.manual_seed(1)
    layer = rnnkit.LSTM(8, 128, proj_size=64, num_layers=2)
    x = torch.randn(20, 9, 8, requires_grad=True)
    assert MODULE.tiled(9, 4 * 128, 64) and MODULE.tiled(9, 64, 4 * 128)
    tiled = _run(layer, x, None, True)
    ref = _python64(layer, x, None, monkeypatch)
    for a, r in zip(tiled, ref, strict=True):
        assert_close(a.double(), r, rtol=0, atol=2e-5 * (1 + r.abs().max().item()))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_tiles_with_the_regularisers(cell):
    """Recurrent dropout and zoneout in training: the same seed gives the same masks, so the
    tiled and the GEMM path agree."""
    layer = getattr(rnnkit, cell)(8, 64, recurrent_dropout=0.3, zoneout=0.2).train()
    x = torch.randn(25, 6, 8, requires_grad=True)
    results = []
    for tiles in (True, False):
        torch.manual_seed(7)
        results.append(_run(layer, x, None, tiles))
    for a, b in zip(*results, strict=True):
        assert_close(a, b, rtol=0, atol=1e-4 * (1 + b.abs().max().item()))


def test_shapes_the_tiles_do_not_take():
    """More rows or a larger W than the tiles serve, a column count that is not a multiple of
    the tile width, or tiles switched off: the GEMM path."""
    v, (rows, weights) = MODULE.tile_width(), MODULE.tile_limits()
    assert MODULE.tiled(rows, 4 * v, weights // (4 * v))
    assert not MODULE.tiled(rows + 1, 4 * v, 128)
    assert not MODULE.tiled(4, 4 * v, weights // (4 * v) + 1)
    assert not MODULE.tiled(4, 4 * v + v, 128)
    was = MODULE.set_tiled(False)
    try:
        assert not MODULE.tiled(4, 4 * 128, 128)
    finally:
        MODULE.set_tiled(was)


def test_tile_limits_by_vendor():
    """The limits this CPU's vendor was measured for (native.TILE_LIMITS), else the C++
    defaults measured on an Intel Xeon."""
    expected = native.TILE_LIMITS.get(native.gemm.cpu_vendor(), (16, 1 << 18))
    assert MODULE.tile_limits() == expected


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_tiles_at_many_rows_and_a_large_weight(cell):
    """Limits raised to 64 rows and W up to 2^20 (past an AMD EPYC's) on every CPU: 37 rows
    (nine tiles of four and one row left) and H 512, tiles against the GEMM path, training
    and inference."""
    torch.manual_seed(3)
    layer = getattr(rnnkit, cell)(16, 512)
    x = torch.randn(6, 37, 16, requires_grad=True)
    was = MODULE.set_tile_limits(64, 1 << 20)
    try:
        assert MODULE.tiled(37, (4 if cell == "LSTM" else 3 if cell == "GRU" else 1) * 512, 512)
        tiled = _run(layer, x, None, True)
        with torch.no_grad():
            infer = layer.eval()(x)[0]
        layer.train()
    finally:
        MODULE.set_tile_limits(*was)
    plain = _run(layer, x, None, False)
    for a, b in zip(tiled, plain, strict=True):
        assert_close(a, b, rtol=0, atol=1e-4 * (1 + b.abs().max().item()))
    assert_close(infer, plain[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_tiles_in_inference(cell, monkeypatch):
    """No-grad calls: the pre-activations in chunks (a scratch buffer reused chunk after chunk)
    and the LSTM's two-buffer ring of cells, with the tiles and without."""
    monkeypatch.setattr(rnnkit.bptt.common, "CHUNK", 64 * 16 * 4)  # a few steps per chunk
    torch.manual_seed(2)
    layer = getattr(rnnkit, cell)(8, 64, num_layers=2)
    x = torch.randn(40, 16, 8)
    lengths = torch.randint(1, 41, (16,))
    lengths[3] = 40
    results = []
    with torch.no_grad():
        for tiles in (True, False):
            was = MODULE.set_tiled(tiles)
            try:
                out, state = layer(x, lengths=lengths)
            finally:
                MODULE.set_tiled(was)
            results.append([out, *(state if isinstance(state, tuple) else (state,))])
    for a, b in zip(*results, strict=True):
        assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("B", [16, 5])
def test_lstm_input_product_in_the_tiles_step(B, monkeypatch):
    """The LSTM step's input product on the tiles (native._fused_input: no sequence-wide
    GEMM) against the same with it: outputs, final states and every gradient, ragged lengths,
    both directions, two layers; and inference with the pre-activations in chunks."""
    torch.manual_seed(B)
    layer = rnnkit.LSTM(24, 64, num_layers=2, bidirectional=True)
    x = torch.randn(30, B, 24, requires_grad=True)
    lengths = torch.randint(1, 31, (B,))
    lengths[1] = 30
    w = layer.weight_ih_l0.detach()
    packed = native._recurrent_weight(layer.weight_hh_l0.detach(), B, 30, lstm=True)
    monkeypatch.setattr(native, "FUSED_INPUT", True)  # on every CPU (by default AMD's, Intel's)
    monkeypatch.setattr(native, "FUSED_INPUT_PER_ROW", None)
    assert native._fused_input(x, w, None, packed) is not None
    results = []
    for fused in (True, False):
        monkeypatch.setattr(native, "FUSED_INPUT", fused)
        results.append(_run(layer, x, lengths, True))
        with torch.no_grad(), monkeypatch.context() as m:
            m.setattr(rnnkit.bptt.common, "CHUNK", 64 * 4 * B * 4)  # four steps per chunk
            results[-1].append(layer(x, lengths=lengths)[0])
    for a, b in zip(*results, strict=True):
        assert_close(a, b, rtol=0, atol=2e-5 * (1 + b.abs().max().item()))
    monkeypatch.setattr(native, "FUSED_INPUT", False)
    assert native._fused_input(x, w, None, packed) is None


def test_fused_input_by_elements_per_row(monkeypatch):
    """With native.FUSED_INPUT_PER_ROW (an Intel Xeon's rule), the input product joins the
    step only where W_ih has at most that many elements per row of the step."""
    layer = rnnkit.LSTM(32, 64)
    w = layer.weight_ih_l0.detach()  # (256, 32): 8,192 elements
    packed = native._recurrent_weight(layer.weight_hh_l0.detach(), 4, 10, lstm=True)
    monkeypatch.setattr(native, "FUSED_INPUT", True)
    monkeypatch.setattr(native, "FUSED_INPUT_PER_ROW", 2048)
    assert native._fused_input(torch.randn(10, 4, 32), w, None, packed) is not None  # 2,048
    assert native._fused_input(torch.randn(10, 3, 32), w, None, packed) is None  # 2,731
    monkeypatch.setattr(native, "FUSED_INPUT_PER_ROW", None)
    assert native._fused_input(torch.randn(10, 3, 32), w, None, packed) is not None


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("fused", [True, False])
def test_lstm_steps_in_one_parallel_region(threads, fused, monkeypatch):
    """The LSTM's tiled steps in one parallel region with a barrier per step (native_tile.h
    run_tile_steps; forward: 8 tiles a step, shared by 3 threads with the input product in the
    step; backward: 2 tiles, each thread's units' gradients after its tile) against the GEMM
    path: ragged lengths (rows ending mid-sequence go to h_n, c_n from each thread's units, and
    take dL/dh_n), both directions, two layers, training and inference."""
    torch.manual_seed(threads)
    layer = rnnkit.LSTM(256, 128, num_layers=2, bidirectional=True)
    x = torch.randn(40, 12, 256, requires_grad=True)
    lengths = torch.randint(1, 41, (12,))
    lengths[3] = 40
    monkeypatch.setattr(native, "FUSED_INPUT", fused)
    monkeypatch.setattr(native, "FUSED_INPUT_PER_ROW", None)
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = [_run(layer, x, lengths, tiles) for tiles in (True, False)]
        for r, tiles in zip(results, (True, False), strict=True):
            MODULE.set_tiled(tiles)
            with torch.no_grad():
                r.extend(t for t in layer.eval()(x, lengths=lengths)[1])
            MODULE.set_tiled(True)
            layer.train()
    finally:
        torch.set_num_threads(was)
    for a, b in zip(*results, strict=True):
        assert_close(a, b, rtol=0, atol=2e-5 * (1 + b.abs().max().item()))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("ragged", [False, True])
def test_lstm_row_groups(threads, fused, ragged, monkeypatch):
    """Row groups (native_tile.h row_groups: each thread every step of its own rows; 13 rows in
    2 or 3 groups, cut by native.cpp row_bounds so that each group's steps are about even)
    against the split columns and against the GEMM path: outputs, final states, every gradient
    (db summed per group), equal or ragged lengths, both directions, two layers, training and
    inference."""
    torch.manual_seed(threads)
    layer = rnnkit.LSTM(24, 64, num_layers=2, bidirectional=True)
    x = torch.randn(30, 13, 24, requires_grad=True)
    lengths = torch.randint(1, 31, (13,)) if ragged else None
    monkeypatch.setattr(native, "FUSED_INPUT", fused)
    monkeypatch.setattr(native, "FUSED_INPUT_PER_ROW", None)
    was, limits = torch.get_num_threads(), MODULE.set_row_groups(1 << 30, 4)
    torch.set_num_threads(threads)
    try:
        results = []
        for groups, tiles in ((True, True), (False, True), (False, False)):
            MODULE.set_row_groups(1 << 30 if groups else 0, 4)
            results.append(_run(layer, x, lengths, tiles))
            MODULE.set_tiled(tiles)
            with torch.no_grad():
                results[-1].extend(layer.eval()(x, lengths=lengths)[1])
            MODULE.set_tiled(True)
            layer.train()
    finally:
        torch.set_num_threads(was)
        MODULE.set_row_groups(*limits)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert_close(a, b, rtol=0, atol=2e-5 * (1 + b.abs().max().item()))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_layer_norm_step_products_on_the_tiles(cell):
    """The layer-normalised loops' step products (native_ln.cpp, through native.cpp's
    `product`) on the tiles against the GEMM path: outputs, final states and every gradient,
    ragged lengths, both directions."""
    torch.manual_seed(4)
    layer = getattr(rnnkit, cell)(8, 64, layer_norm=True, bidirectional=True)
    x = torch.randn(20, 7, 8, requires_grad=True)
    lengths = torch.randint(1, 21, (7,))
    lengths[2] = 20
    gates = 4 if cell == "LSTM" else 3 if cell == "GRU" else 1
    assert MODULE.tiled(7, gates * 64, 64) and MODULE.tiled(7, 64, gates * 64)
    tiled = _run(layer, x, lengths, True)
    plain = _run(layer, x, lengths, False)
    for a, b in zip(tiled, plain, strict=True):
        assert_close(a, b, rtol=0, atol=1e-4 * (1 + b.abs().max().item()))


@pytest.mark.skipif(not native.gemm.ONEDNN, reason="a torch without oneDNN")
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])  # (the RNN projects all steps at once)
def test_chunked_inference_on_a_packed_onednn_weight(cell, monkeypatch):
    """No-grad calls with the input projection in chunks on oneDNN from W reordered once
    (gemm.onednn_packed; monkeypatched limits put these small products there on any CPU)
    against one projection for the whole sequence."""
    torch.manual_seed(5)
    layer = getattr(rnnkit, cell)(16, 64, num_layers=2).eval()
    x = torch.randn(40, 8, 16)
    monkeypatch.setattr(native.gemm, "MIN_FLOPS", 0)
    monkeypatch.setattr(native, "FUSED_INPUT", False)  # the LSTM's input GEMM too
    packs, pack = [], native.gemm.onednn_packed

    def spy(*args):
        packs.append(pack(*args))
        return packs[-1]

    monkeypatch.setattr(native.gemm, "onednn_packed", spy)
    gates = 4 if cell == "LSTM" else 3
    with torch.no_grad():
        whole = layer(x)[0]
        assert not packs
        monkeypatch.setattr(rnnkit.bptt.common, "CHUNK", 4 * 8 * gates * 64)  # 4 steps a chunk
        chunked = layer(x)[0]
    assert len(packs) == 2 and all(p is not None for p in packs)  # each layer's W_ih
    assert_close(chunked, whole, rtol=0, atol=1e-5)
