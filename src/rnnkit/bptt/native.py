"""The C++ time loops (`native.cpp`), compiled on first use; None where they cannot be.

The kernels run their loops over time here when the tensors are on the CPU (the RNN's, the
LSTM's and the GRU's forward and backward, and the LSTM's no-grad step): the same math as their
Python loops, without an interpreter round trip per op, in the scaled coordinates of
native.cpp's header; the functions at the end prepare them (the only Python code that knows
them). The build (build.py) needs a C++ compiler (torch.utils.cpp_extension, cached in
TORCH_EXTENSIONS_DIR, about 30 s the first time); without one, or with RNNKIT_NATIVE=0, the
kernels keep their Python loops, which give the same results. Under `no_build` (the command
line's verbs but `train`), a call too small to be worth a 30 s wait (under SMALL_WORK time
steps x rows: the worked example of `rnnkit demo`, a prediction for a few texts, sampling step
by step) uses the loops only when an earlier process built them, and the Python loops
otherwise.
"""

import contextlib
import os
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.bptt import gemm
from rnnkit.bptt.build import _build, _build_lock, _import, _name
from rnnkit.bptt.common import _chunk, _mask_padding, _project, _projections, _unprojected
from rnnkit.bptt.workspace import buffer, recycled

_state: dict = {}
TILES, TILES_LSTM = 3, 4  # StepWeight libraries: the loops' own tiles (native.cpp's kTiles)
SMALL_WORK = 4096  # time steps x rows: under no_build, a smaller call never waits for a build


def enabled() -> bool:
    return os.environ.get("RNNKIT_NATIVE", "1") not in ("0", "false", "no", "off")


def load():
    """The compiled module, or None (no compiler, a failed build, or RNNKIT_NATIVE=0)."""
    if not enabled():
        return None
    if "module" not in _state:
        _state["module"] = _configured(_build())
    return _state["module"]


def loaded():
    """The module if this process has already loaded it, else None; never builds."""
    return _state.get("module") if enabled() else None


# The step products that take the loops' own tiles by CPU vendor, (most rows, most elements of
# W), measured with bench_tiles on an AMD EPYC and an Intel Xeon (docs/bptt.md (i)); other
# CPUs keep native_tile.h's (16, 2^18).
TILE_LIMITS = {"AuthenticAMD": (64, 1 << 20), "GenuineIntel": (64, 1 << 20)}


# Row groups of the LSTM's tiled loops (native_tile.h row_groups) by CPU vendor, (most
# elements of W, least rows a group); other CPUs keep native_tile.h's (2^17, 4), the AMD EPYC
# not yet measured. On an Intel Xeon, 2 threads, bench_tiles (the rules with and without
# them): B16 H128 I32 training 12.05 -> 9.16 ms, inference 3.58 -> 3.22; B8 H256 I128
# training 17.9 -> 16.4 (the backward's W_hh^T, 2^18 elements, in groups; the forward's
# [W_hh, W_ih] is larger and keeps the split columns: in groups its inference was 8.2
# against 7.1 ms).
ROW_GROUPS = {"GenuineIntel": (1 << 18, 4)}


def _configured(module):
    """The module with the vendor's tile limits and RNNKIT_TILES applied: 0 sends the loops'
    small step products to the GEMM libraries instead of their own tiles (native_tile.h), for
    comparisons."""
    if module is None:
        return None
    if gemm.cpu_vendor() in TILE_LIMITS:
        module.set_tile_limits(*TILE_LIMITS[gemm.cpu_vendor()])
    if gemm.cpu_vendor() in ROW_GROUPS:
        module.set_row_groups(*ROW_GROUPS[gemm.cpu_vendor()])
    if os.environ.get("RNNKIT_TILES", "1") in ("0", "false", "no", "off"):
        module.set_tiled(False)
    return module


@contextlib.contextmanager
def no_build():
    """While open, calls under SMALL_WORK time steps x rows never wait for a build: they run
    the C++ loops an earlier process built, else the Python loops."""
    before = _state.get("no_build", False)
    _state["no_build"] = True
    try:
        yield
    finally:
        _state["no_build"] = before


def for_cpu(x) -> object | None:
    """The module when x is a CPU tensor and the loops are available, else None."""
    if x.device.type != "cpu":
        return None
    if _state.get("no_build") and "module" not in _state and x.numel() < SMALL_WORK * x.shape[-1]:
        return _built()
    return load()


def _built():
    """The module an earlier process built, opened (and kept), or None; never compiles. That
    there is none is remembered, so that a loop of small calls does not look again."""
    if not enabled() or _state.get("none_built"):
        return None
    from torch.utils.cpp_extension import _get_build_directory

    name = _name()
    where = Path(_get_build_directory(name, False))
    try:
        with _build_lock(where):
            module = _import(name, where / f"{name}.so")
    except Exception:  # noqa: BLE001 - an unreadable build: a later load() rebuilds or warns
        module = None
    if module is None:
        _state["none_built"] = True
        return None
    _state["module"] = _configured(module)
    return module


# ---- The kernels' calls into the loops -----------------------------------------------------
# Each takes what the kernel's Python loop takes and gives what it gives, so a kernel picks
# one or the other and the rest of it reads the same. The forwards run in native.cpp's scaled
# coordinates (its header: tanh(a) = 2 sigmoid(2a) - 1, factors folded into the weights) and
# return true values, except the tensors that only their own backward reads, noted there.


def _double_rows(w: Tensor | None, H: int) -> Tensor | None:
    """A copy of w (G*H, .) or (G*H,) with rows [2H, 3H), the LSTM's g or GRU's n, times 2."""
    if w is None:
        return None
    w = w.clone()
    w[2 * H : 3 * H] *= 2
    return w


def _recurrent_weight(
    w: Tensor, rows: int, calls: int, lstm: bool = False, scale: float = 1.0
) -> gemm.StepWeight:
    """scale W_hh for a loop's step products: for the loops' own tiles (native_tile.h) where
    products of `rows` rows with it take them, else for a GEMM library (gemm.step_weight).
    For the tiles W (N, K) is packed as Wp (N/4V, K, 4V), V the CPU's vector width: with
    Wp[u][k][m] = W[4V u + m][k], or with `lstm` (the forward of an LSTM without projection
    or regularisers, whose whole step then runs on the tiles) by gates, Wp[u][k][gV + l] =
    W[g H + u V + l][k], a tile's columns the gates [i, f, g, o] of units [uV, uV + V). The
    scale is applied while packing (one pass over W); the tiles read the packed W only, so
    the plain W of a scaled tile weight is an empty tensor (a product with it would raise)."""
    if not _tiled(w, rows):
        return gemm.step_weight(w if scale == 1 else scale * w, rows, calls)
    plain = w if scale == 1 else w.new_empty(0)
    return gemm.StepWeight(_tile_packed(w, lstm, scale), plain, TILES_LSTM if lstm else TILES, rows)


def _tiled(w: Tensor, rows: int) -> bool:
    """Whether products of `rows` rows with W take the loops' tiles."""
    return w.dtype == torch.float32 and w.device.type == "cpu" and load().tiled(rows, *w.shape)


def _tile_packed(w: Tensor, lstm: bool, scale: float = 1.0) -> Tensor:
    """scale W (N, K) packed for the tiles (see _recurrent_weight), by gates with `lstm`."""
    (N, K), V = w.shape, load().tile_width()
    if lstm:  # (N/4V, K, 4, V), made contiguous below, then (N/4V, K, 4V)
        view = w.reshape(4, N // (4 * V), V, K).permute(1, 3, 0, 2)
    else:
        view = w.reshape(N // (4 * V), 4 * V, K).transpose(1, 2)
    return torch.mul(view, scale, out=w.new_empty(view.shape)).view(N // (4 * V), K, -1)


# The LSTM's input product in the tiles' step (_fused_input), measured with bench_tiles: a gain
# on an AMD EPYC at every shape; on an Intel Xeon where W_ih has at most FUSED_INPUT_PER_ROW
# elements per row of the step (B4 H512 I128: each step re-reads 1 MB of W_ih for 4 rows, and
# W_ih and W_hh outgrow the 2 MB L2, 19.4 ms against 15.0 with the input GEMM; B8 H256 6.2
# against 6.6), None: no limit.
FUSED_INPUT = gemm.cpu_vendor() in ("AuthenticAMD", "GenuineIntel")
FUSED_INPUT_PER_ROW = {"GenuineIntel": 1 << 14}.get(gemm.cpu_vendor())


def _fused_input(x: Tensor, w_x: Tensor, b_x: Tensor | None, w_rest: gemm.StepWeight):
    """(x, W_ih packed by gates, b) when the LSTM step's input product joins its recurrent
    product on the tiles (the whole step runs there, W_ih within the tiles' limits), else
    None: no sequence-wide input GEMM then (at a small I far below the GEMM peak) and no pass
    over the (T, B, 4H) pre-activations before the loop (docs/bptt.md (i))."""
    rows, per_row = x.shape[1], FUSED_INPUT_PER_ROW
    if not FUSED_INPUT or w_rest.lib != TILES_LSTM or not load().tiled(rows, *w_x.shape):
        return None
    if per_row is not None and w_x.numel() > per_row * rows:
        return None
    b = w_x.new_zeros(w_x.shape[0]) if b_x is None else b_x.contiguous()
    return x.contiguous(), _tile_packed(w_x, True), b


def rnn_forward(x, h0, w_ih, w_hh, b, steps, relu, noise=None) -> Tensor:
    """out (T, B, H) of the Elman RNN; tanh on s = (h + 1) / 2 = sigmoid(2 z):
    z'_t = 2 z_t = [2 W_ih x_t + 2 b - 2 W_hh 1] + 4 W_hh s_{t-1} (2 W_hh h0 at t = 0).
    With `noise` (regularisers.Noise): the product reads m s_{t-1}, and -2 W_hh 1 becomes
    -2 m W_hh^T, a term per row; zoneout mixes s_t in native.cpp."""
    rec, k = _noise(noise, "recurrent", "zone_h")
    T, B, _ = x.shape
    if relu:
        Z = _project(x, w_ih, b, "rnn.Z")
        w0 = w = w_hh
    else:
        Z = _project(x, 2 * w_ih, None if b is None else 2 * b, "rnn.Z")
        if T > 1:
            Z[1:] -= 2 * (w_hh.sum(1) if rec is None else gemm.linear(rec, w_hh))
        w0, w = 2 * w_hh, 4 * w_hh
    load().rnn_forward(steps, Z, h0.contiguous(), w0, _recurrent_weight(w, B, T), relu, rec, k)
    return Z if relu else Z.mul_(2).sub_(1)  # h = 2 s - 1


def rnn_backward(steps, D, dout, dh_n, dZ, h0, w_hh_t, norms, noise=None, dh=None) -> None:
    """Fills dZ (the RNN's backward needs no scaling), and leaves dh_0 in `dh` if given."""
    w = _recurrent_weight(w_hh_t, len(h0), len(steps))
    dh = torch.empty(h0.shape, dtype=D.dtype) if dh is None else dh
    noises = _noise(noise, "recurrent", "zone_h")
    load().rnn_backward(steps, D, dout, dh_n.contiguous(), dZ, dh, w, norms, *noises)


def _noise(noise, *names):
    """The regularisers' tensors (regularisers.Noise) the loops take, contiguous, or Nones."""
    if noise is None:
        return (None,) * len(names)
    ts = (getattr(noise, n) for n in names)
    return tuple(None if t is None else t.contiguous() for t in ts)


def lstm_forward(x, h0, c0, w_ih, w_hh, b, steps, save, w_hr=None, noise=None):
    """(Z, C, out, h_n, c_n) as the LSTM's Python loop gives them, but C holds c' = 2c (read
    by `lstm_backward` only). The loop carries c' and h / 2, and reads s_g = sigmoid(2 z_g)
    from the g rows doubled:
        c'_t = f c'_{t-1} + 4 i s_g - 2 i        h_t / 2 = o sigmoid(c'_t) - o / 2
    With a projection W_hr the row pass gives m_t / 2 = o sigmoid(c'_t) - o / 2 and the
    step's product h_t / 2 = (m_t / 2) W_hr^T. With `noise` (regularisers.Noise, the
    kernel's rows): m h_{t-1} in the product and zoneout's mixes, in native.cpp. Where every
    step runs on the tiles (`tiled`) the loop writes the true h_t and g instead, and reads
    h_{t-1} with W'_hh.
    """
    T, B, _ = x.shape
    H = c0.shape[1]
    w_x, b_x, w1 = _double_rows(w_ih, H), _double_rows(b, H), _double_rows(w_hh, H)
    plain = w_hr is None and all(n is None for n in _noise(noise, "recurrent", "zone_h", "zone_c"))
    tiled = plain and _tiled(w1, B)  # every step on the tiles, true h and g written (native.cpp)
    w_rest = _recurrent_weight(w1, B, T, plain, 1 if tiled else 2)  # else h_{t-1} / 2 at t >= 1
    w_proj = None if w_hr is None else gemm.step_weight(w_hr, B, T)
    fused = _fused_input(x, w_x, b_x, w_rest) if plain else None
    # padded rows zeroed: a packed product reads whole steps
    out = _mask_padding(recycled("lstm.out", (T, B, h0.shape[1]), x), steps)
    C = recycled("lstm.C", (T, B, H), x) if save else buffer("lstm.c", (2, B, H), x)
    h_n, c_n, c_prev = torch.empty_like(h0), torch.empty_like(c0), 2 * c0
    chunks = _unprojected if fused else _projections
    for t0, Z in chunks(x, w_x, b_x, T if save else _chunk(B, 4 * H), "lstm.Z"):
        chunk = steps[t0 : t0 + len(Z)]
        args = (Z, h0.contiguous(), c_prev, out, C, not save, w1, w_rest, w_proj, h_n, c_n)
        noises = _noise(noise, "recurrent", "zone_h", "zone_c")
        load().lstm_forward(chunk, *args, *noises, fused)
    c_n.mul_(0.5)
    if not tiled:
        out.mul_(2), h_n.mul_(2)
    if save and not tiled:
        Z[:, :, 2 * H : 3 * H].mul_(2).sub_(1)  # g = 2 s_g - 1, for the backward
    return Z, C, out, h_n, c_n


def lstm_backward(steps, Z, C, c0, dout, dh_n, dZ, dc, h0, w_hh_t, norms, proj=None, **extra):
    """Fills dZ and leaves dL/dc_0 in dc, from `lstm_forward`'s C = c'; with a projection
    `proj` = (W_hr, DH, M), also dh_t into DH (T, B, P) and m_t into M (T, B, H). `extra`:
    `noise`, with which dh_t goes into DH (given) too, and with zoneout on c the factors read
    the unzoned cells c~'_t = f c'_{t-1} + 2 i g, formed row by row from Z and C; dC (T, B, H),
    the gradient of every c_t returned (LSTM.forward_with_cells), added to dL/dc_t at its
    step; db (4H,), filled with sum_t dz_t. The loop forms sigmoid(c'_t) itself."""
    noise, DH, dC, db = (extra.get(k) for k in ("noise", "DH", "dC", "db"))
    B, T = len(h0), len(steps)
    w = _recurrent_weight(w_hh_t, B, T)
    dh, w_proj, M = torch.empty_like(h0) if DH is None else DH, None, None  # (B, P): every step
    if proj is not None:  # dm_t = dh_t W_hr: the product with (W_hr^T)^T
        dh, w_proj, M = proj[1], gemm.step_weight(proj[0].t().contiguous(), B, T), proj[2]
    args = (Z, C.new_empty(0), C, c0.contiguous(), dout, dh_n.contiguous(), dZ, dc, dh, w)
    noises = _noise(noise, "recurrent", "zone_h", "zone_c")
    dC = None if dC is None else dC.contiguous()
    load().lstm_backward(steps, *args, norms, w_proj, M, *noises, dC, db)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, steps, save, noise=None):
    """(A, U, out, h_n) as the GRU's Python loop gives them, but U's n block holds 2 u_n (read
    by `gru_backward` only). The loop carries q = (h + 1) / 2, with W', b' the n rows doubled:
        u = q_{t-1} (2 W')^T + (b' - W' 1)       s_n = sigmoid(2 a_n + r 2 u_n) = (n + 1) / 2
        q_t = s_n + z (q_{t-1} - s_n)
    With `noise` (regularisers.Noise): recurrent dropout's m in u = (m q_{t-1}) (2 W')^T +
    (b' - m W'^T), a bias per row; zoneout's q_t = k q_{t-1} + (1 - k) q~_t.
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    w_x, b_x, w = _double_rows(w_ih, H), _double_rows(b_ih, H), _double_rows(w_hh, H)
    rec, k = _noise(noise, "recurrent", "zone_h")
    ones = w.sum(1) if rec is None else gemm.linear(rec, w)  # W' 1, or m W'^T (B, 3H)
    b_u = -ones if b_hh is None else _double_rows(b_hh, H) - ones
    w_step = _recurrent_weight(2 * w, B, T)
    # q until the end; padded rows zeroed: a packed product reads whole steps
    out = _mask_padding(recycled("gru.out", (T, B, H), x), steps)
    h_n, q0 = torch.empty_like(h0), ((h0 + 1) * 0.5).contiguous()
    for t0, A in _projections(x, w_x, b_x, T if save else _chunk(B, 3 * H), "gru.A"):
        U = recycled("gru.U", A.shape, x) if save else buffer("gru.u", (B, 3 * H), x)
        chunk = steps[t0 : t0 + len(A)]
        load().gru_forward(chunk, A, U, out, q0, w_step, b_u.contiguous(), save, h_n, rec, k)
    out.mul_(2).sub_(1), h_n.mul_(2).sub_(1)  # h = 2 q - 1
    if save:
        A[:, :, 2 * H :].mul_(2).sub_(1)  # n = 2 s_n - 1, for the backward
    return A, U, out, h_n


def gru_backward(steps, A, U, out, h0, dout, dh_n, dU, DH, w_hh_t, noise=None) -> Tensor:
    """Fills dU and DH, returns dL/da_n, from `gru_forward`'s U (n block 2 u_n)."""
    dA_n = _mask_padding(buffer("gru.dAn", out.shape, out), steps)
    w = _recurrent_weight(w_hh_t, out.shape[1], len(steps))
    args = (A, U, out, h0.contiguous(), dout, dh_n.contiguous(), dU, DH, dA_n, w)
    load().gru_backward(steps, *args, *_noise(noise, "recurrent", "zone_h"))
    return dA_n
