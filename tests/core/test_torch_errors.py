"""rnnkit against torch.nn on bad input: each case runs torch.nn and rnnkit on the same input,
and rnnkit must raise an instance of the class torch.nn raises (found by running torch.nn, never
written down), with a message naming the value (errors.py). Then the cases where the two differ
on purpose, the constructors' signatures and proj_size, and TorchScript (refused, pointing to
torch.compile and torch.export).

    T: time, B: batch, I: input size, H: hidden size; layer cases have 2 layers: states (2, B, H)
"""

import inspect
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit.errors import ArgumentTypeError, ShapeError, TorchScriptError

T, B, I, H = 5, 2, 3, 4
LAYERS = ("RNN", "LSTM", "GRU")
CELLS = ("RNNCell", "LSTMCell", "GRUCell")
F64 = torch.float64


def x(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


def pair(*shape, dtype=torch.float32):
    """An LSTM state (h, c)."""
    return x(*shape, dtype=dtype), x(*shape, dtype=dtype)


def make(name, *args, **kwargs):
    """ns -> getattr(ns, name)(*args, **kwargs), for ns = torch.nn or rnnkit (same names)."""
    return lambda ns: getattr(ns, name)(*args, **kwargs)


@dataclass
class Case:
    id: str
    build: Callable  # ns -> module
    call: Callable | None  # module -> output; None: the constructor is the case
    message: str  # regex rnnkit's message must match: the offending value, named
    torch_build: Callable | None = None  # where torch.nn has no twin (MinGRU): its stand-in


def run(case: Case, ns) -> BaseException | None:
    """The exception the case raises with torch.nn or rnnkit as `ns`, or None."""
    build = case.torch_build if ns is nn and case.torch_build else case.build
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropout with one layer
            module = build(ns)
            if case.call is not None:
                case.call(module)
    except Exception as e:  # any class torch.nn raises is the one to match
        return e
    return None


# ---- the table: torch.nn raises, and rnnkit raises an instance of the same class ------------

# (argument, value, rnnkit's message), given to a 2-layer RNN, LSTM and GRU
LAYER_ARGUMENTS = [
    ("input_size", 0, "input_size must be > 0, got 0"),
    ("input_size", -1, "input_size must be > 0, got -1"),
    ("hidden_size", 0, "hidden_size must be > 0, got 0"),
    ("num_layers", 0, "num_layers must be > 0, got 0"),
    ("input_size", 2.0, "input_size must be an int, got float 2.0"),
    ("hidden_size", "4", "hidden_size must be an int, got str '4'"),
    ("num_layers", 2.0, "num_layers must be an int, got float 2.0"),
    ("dropout", 1.5, r"dropout must be a float in \[0, 1\], got 1.5"),
    ("dropout", -0.1, r"dropout must be a float in \[0, 1\], got -0.1"),
    ("dropout", "0.5", r"dropout must be a float in \[0, 1\], got '0.5'"),
    ("dropout", True, r"dropout must be a float in \[0, 1\], got True"),
    ("bias", 1, "bias must be a bool, got 1"),
    ("batch_first", 1, "batch_first must be a bool, got 1"),
]
# (name, cell arguments, rnnkit's message); torch.nn's cells fail in torch.empty
CELL_ARGUMENTS = [
    ("input_size=-1", (-1, H), "input_size must be > 0, got -1"),
    ("hidden_size=-2", (I, -2), "hidden_size must be > 0, got -2"),
    ("input_size=2.0", (2.0, H), "input_size must be an int, got float 2.0"),
]
# (name, call on any layer, rnnkit's message)
INPUT_CALLS = [
    ("input_size", lambda m: m(x(T, B, I + 1)), rf"input_size={I}, got {I + 1}"),
    ("input_1d", lambda m: m(x(I)), rf"got shape \({I},\)"),
    ("input_4d", lambda m: m(x(2, T, B, I)), rf"got shape \(2, {T}, {B}, {I}\)"),
    ("input_int64", lambda m: m(torch.ones(T, B, I, dtype=torch.long)), "torch.int64"),
    ("input_float64", lambda m: m(x(T, B, I, dtype=F64)), "torch.float64 does not match"),
    ("input_no_steps", lambda m: m(x(0, B, I)), rf"got \(0, {B}, {I}\)"),
]
# (name, call on RNN, GRU, MinGRU or MinLSTM, rnnkit's message)
HX_CALLS = [
    ("hx_layers", lambda m: m(x(T, B, I), x(1, B, H)), rf"\(2, {B}, {H}\), got \(1, {B}, {H}\)"),
    ("hx_hidden", lambda m: m(x(T, B, I), x(2, B, H + 1)), rf"got \(2, {B}, {H + 1}\)"),
    ("hx_batch", lambda m: m(x(T, B, I), x(2, B + 1, H)), rf"got \(2, {B + 1}, {H}\)"),
    ("hx_2d_batched_input", lambda m: m(x(T, B, I), x(2, H)), rf"got \(2, {H}\)"),
    ("hx_3d_unbatched_input", lambda m: m(x(T, I), x(2, B, H)), rf"\(2, {H}\), got \(2, {B}"),
    ("hx_float64", lambda m: m(x(T, B, I), x(2, B, H, dtype=F64)), "got torch.float64"),
]
# (name, (h_0, c_0) for a 2-layer LSTM, rnnkit's message)
LSTM_STATES = [
    ("h0_layers", lambda: pair(1, B, H), rf"h_0 .*got \(1, {B}, {H}\)"),
    ("h0_hidden", lambda: (x(2, B, H + 1), x(2, B, H)), rf"h_0 .*got \(2, {B}, {H + 1}\)"),
    ("h0_batch", lambda: pair(2, B + 1, H), rf"h_0 .*got \(2, {B + 1}, {H}\)"),
    ("c0_hidden", lambda: (x(2, B, H), x(2, B, H + 1)), rf"c_0 .*got \(2, {B}, {H + 1}\)"),
    ("c0_batch", lambda: (x(2, B, H), x(2, B + 1, H)), rf"c_0 .*got \(2, {B + 1}, {H}\)"),
    ("hx_2d_batched_input", lambda: pair(2, H), rf"h_0 .*got \(2, {H}\)"),
    ("c0_2d_batched_input", lambda: (x(2, B, H), x(2, H)), rf"c_0 .*got \(2, {H}\)"),
    ("h0_float64", lambda: pair(2, B, H, dtype=F64), "h_0 .*got torch.float64"),
    ("c0_float64", lambda: (x(2, B, H), x(2, B, H, dtype=F64)), "c_0 .*got torch.float64"),
    ("hx_a_tensor", lambda: x(2, B, H), r"tuple \(h_0, c_0\), got Tensor"),
]
# (name, call on a cell given its state maker `st` (x or pair), rnnkit's message)
CELL_CALLS = [
    ("input_size", lambda m, st: m(x(B, I + 1)), rf"\(B, {I}\) or \({I},\), got \({B}, {I + 1}\)"),
    ("input_3d", lambda m, st: m(x(T, B, I)), rf"got \({T}, {B}, {I}\)"),
    ("input_0d", lambda m, st: m(torch.tensor(1.0)), r"got \(\)"),
    ("input_int64", lambda m, st: m(torch.ones(B, I, dtype=torch.long)), "got dtype torch.int64"),
    ("input_float64", lambda m, st: m(x(B, I, dtype=F64)), "torch.float64 does not match"),
    ("hx_hidden", lambda m, st: m(x(B, I), st(B, H + 1)), rf"got \({B}, {H + 1}\)"),
    ("hx_batch", lambda m, st: m(x(B, I), st(B + 1, H)), rf"got \({B + 1}, {H}\)"),
    ("hx_3d", lambda m, st: m(x(B, I), st(1, B, H)), rf"got \(1, {B}, {H}\)"),
    ("hx_2d_unbatched_input", lambda m, st: m(x(I), st(B, H)), rf"\({H},\), got \({B}, {H}\)"),
    ("hx_1d_batched_input", lambda m, st: m(x(B, I), st(H)), rf"\({B}, {H}\), got \({H},\)"),
    ("hx_float64", lambda m, st: m(x(B, I), st(B, H, dtype=F64)), "got torch.float64"),
]
# (name, hx for an LSTMCell, rnnkit's message)
LSTM_CELL_STATES = [
    ("c_hidden", lambda: (x(B, H), x(B, H + 1)), rf"c must .*got \({B}, {H + 1}\)"),
    ("c_batch", lambda: (x(B, H), x(B + 1, H)), rf"c must .*got \({B + 1}, {H}\)"),
    ("hx_a_tensor", lambda: x(B, H), r"tuple \(h, c\) for LSTMCell, got Tensor"),
    ("hx_one_tensor", lambda: (x(B, H),), r"tuple \(h, c\) for LSTMCell, got tuple of 1"),
]

CASES = [
    *[
        Case(f"{L}({arg}={v!r})", make(L, **{"input_size": I, "hidden_size": H, arg: v}), None, m)
        for L in LAYERS
        for arg, v, m in LAYER_ARGUMENTS
    ],
    Case("RNN(nonlinearity)", make("RNN", I, H, nonlinearity="gelu"), None, "got 'gelu'"),
    *[
        Case(
            f"{L}(proj_size={v})",
            make(L, I, H, proj_size=v),
            None,
            f"{L} takes none, got proj_size={v}",
        )
        for L in ("RNN", "GRU")
        for v in (0, 2)
    ],
    Case("LSTM(proj_size=-1)", make("LSTM", I, H, proj_size=-1), None, "proj_size .*got -1"),
    Case("LSTM(proj_size=H)", make("LSTM", I, H, proj_size=H), None, f"< hidden_size={H}, got"),
    Case("LSTM(proj_size=2.0)", make("LSTM", I, H, proj_size=2.0), None, "got float 2.0"),
    *[
        Case(f"{C}({name})", make(C, *args), None, m)
        for C in CELLS
        for name, args, m in CELL_ARGUMENTS
    ],
    *[
        Case(f"{L}-{name}", make(L, I, H, 2), call, m)
        for L in LAYERS
        for name, call, m in INPUT_CALLS + (HX_CALLS if L != "LSTM" else [])
    ],
    *[
        Case(f"LSTM-{name}", make("LSTM", I, H, 2), lambda m, hx=hx: m(x(T, B, I), hx()), msg)
        for name, hx, msg in LSTM_STATES
    ],
    Case(
        "LSTM-hx_3d_unbatched_input",
        make("LSTM", I, H, 2),
        lambda m: m(x(T, I), pair(2, B, H)),
        rf"\(2, {H}\), got \(2, {B}, {H}\)",
    ),
    *[
        Case(f"{C}-{name}", make(C, I, H), lambda m, call=call, st=st: call(m, st), msg)
        for C, st in (("RNNCell", x), ("LSTMCell", pair), ("GRUCell", x))
        for name, call, msg in CELL_CALLS
    ],
    *[
        Case(f"LSTMCell-{name}", make("LSTMCell", I, H), lambda m, hx=hx: m(x(B, I), hx()), msg)
        for name, hx, msg in LSTM_CELL_STATES
    ],
    # MinGRU and MinLSTM take GRU's arguments: torch.nn.GRU is their stand-in
    *[
        Case(f"{L}-{name}", make(L, I, H, 2), call, m, torch_build=make("GRU", I, H, 2))
        for L in ("MinGRU", "MinLSTM")
        for name, call, m in INPUT_CALLS + HX_CALLS
    ],
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_raises_what_torch_nn_raises(case):
    theirs = run(case, nn)
    assert theirs is not None, f"torch.nn accepts {case.id}: the case belongs in DIFFERENT"
    ours = run(case, rnnkit)
    assert isinstance(ours, type(theirs)), f"torch.nn: {theirs!r}; rnnkit: {ours!r}"
    with pytest.raises(type(theirs), match=case.message):
        raise ours


# ---- where the two differ on purpose --------------------------------------------------------

# (case, what torch.nn does (None: accepts), what rnnkit raises (None: accepts))
DIFFERENT = [
    # rnnkit is stricter: a bool is not a size (torch.nn takes True as 1)
    (Case("LSTM(input_size=True)", make("LSTM", True, H), None, "got bool True"), None, TypeError),
    (Case("GRU(num_layers=True)", make("GRU", I, H, True), None, "got bool True"), None, TypeError),
    # rnnkit is stricter: a cell of size 0 (torch.nn's layers refuse it too)
    (Case("RNNCell(0, H)", make("RNNCell", 0, H), None, "must be > 0, got 0"), None, ShapeError),
    (Case("GRUCell(I, 0)", make("GRUCell", I, 0), None, "must be > 0, got 0"), None, ShapeError),
    # rnnkit refuses a bad nonlinearity when the cell is made; torch.nn at its first call
    (
        Case("RNNCell(gelu)", make("RNNCell", I, H, nonlinearity="gelu"), None, "got 'gelu'"),
        None,
        ValueError,
    ),
    # rnnkit's kernels take no empty batch
    (
        Case("LSTM-no_rows", make("LSTM", I, H), lambda m: m(x(T, 0, I)), f"got \\({T}, 0"),
        None,
        ShapeError,
    ),
    # torch.nn fails by accident (Python's AttributeError, IndexError); rnnkit says what it wants
    (
        Case("GRU-input_a_list", make("GRU", I, H), lambda m: m([[0.0] * I] * T), "got list"),
        AttributeError,
        TypeError,
    ),
    (
        Case(
            "GRU-hx_a_pair",
            make("GRU", I, H),
            lambda m: m(x(T, B, I), pair(1, B, H)),
            "got tuple of 2",
        ),
        AttributeError,
        ArgumentTypeError,
    ),
    (
        Case(
            "LSTM-hx_one_tensor",
            make("LSTM", I, H),
            lambda m: m(x(T, B, I), (x(1, B, H),)),
            "got tuple of 1",
        ),
        IndexError,
        ArgumentTypeError,
    ),
    # torch.nn's RNN and GRU pass a positional device on as proj_size; rnnkit follows the
    # signature torch.nn documents (its typing overload)
    (
        Case(
            "GRU-device_positional", make("GRU", I, H, 1, True, False, 0.0, False, "cpu"), None, ""
        ),
        TypeError,
        None,
    ),
]


@pytest.mark.parametrize("case, theirs, ours", DIFFERENT, ids=[c[0].id for c in DIFFERENT])
def test_differs_from_torch_nn_on_purpose(case, theirs, ours):
    got = run(case, nn)
    assert (type(got) is theirs) if theirs else (got is None), f"torch.nn now: {got!r}"
    got = run(case, rnnkit)
    if ours is None:
        assert got is None, repr(got)
    else:
        with pytest.raises(ours, match=case.message):
            raise got or AssertionError(f"rnnkit accepts {case.id}")


def test_each_error_class_is_every_class_it_stands_for():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    for cls in (TypeError, ValueError, RuntimeError):
        assert issubclass(ArgumentTypeError, cls)


# ---- signatures, proj_size ------------------------------------------------------------------


def torch_parameters(cls) -> list[tuple[str, object]]:
    """(name, default) of torch.nn's constructor, as documented (the layers' typing overload:
    their __init__ itself is (*args, **kwargs))."""
    init = cls.__init__
    overloads = typing.get_overloads(init) if hasattr(typing, "get_overloads") else []
    sig = inspect.signature(overloads[0] if overloads else init)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", LAYERS + CELLS)
def test_signature_is_torch_nns(name):
    if name in LAYERS and not hasattr(typing, "get_overloads"):
        pytest.skip("typing.get_overloads needs Python 3.11")
    ours = inspect.signature(getattr(rnnkit, name)).parameters.values()
    positional = [(p.name, p.default) for p in ours if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == torch_parameters(getattr(nn, name))
    extra = [p for p in ours if p.kind is not p.POSITIONAL_OR_KEYWORD]
    assert all(p.kind is p.KEYWORD_ONLY for p in extra), extra  # impl, and proj_size to refuse


@pytest.mark.parametrize(
    "name, args",
    [  # every torch.nn argument, positionally, at a value other than its default where it can be
        ("LSTM", (I, H, 2, False, True, 0.0, True, 0, "cpu", F64)),
        ("GRU", (I, H, 2, False, True, 0.0, True)),
        ("RNN", (I, H, 2, "relu", False, True, 0.0, True)),
        ("RNNCell", (I, H, False, "relu", "cpu", F64)),
        ("LSTMCell", (I, H, False, "cpu", F64)),
    ],
)
def test_torch_nn_arguments_build_the_same_module(name, args):
    """proj_size=0 included: the state dicts match, and so do the outputs on torch.nn's weights."""
    theirs, ours = getattr(nn, name)(*args), getattr(rnnkit, name)(*args)
    assert {k: (v.shape, v.dtype) for k, v in ours.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(theirs.state_dict())
    dtype = next(theirs.parameters()).dtype
    shape = (B, I) if name.endswith("Cell") else (B, T, I)  # the layers have batch_first=True
    inp = x(*shape, dtype=dtype)
    assert_close(ours(inp), theirs(inp))
    if name == "LSTM":
        assert ours.proj_size == theirs.proj_size == 0


@pytest.mark.parametrize("proj_size", [1, H - 1])
def test_lstm_projections_build_torch_nns_module(proj_size):
    """Every valid proj_size > 0 builds torch.nn's parameters (tests/core/test_proj_size.py
    compares the results)."""
    theirs, ours = nn.LSTM(I, H, 2, proj_size=proj_size), rnnkit.LSTM(I, H, 2, proj_size=proj_size)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(theirs.state_dict())
    out, (h, c) = ours(x(T, B, I))
    assert (out.shape[-1], h.shape[-1], c.shape[-1]) == (proj_size, proj_size, H)


# ---- TorchScript ----------------------------------------------------------------------------


SCRIPTED = [  # (module, input); the Sequential: refused inside a model too
    pytest.param(lambda: rnnkit.LSTM(I, H), (T, B, I), id="LSTM"),
    pytest.param(lambda: rnnkit.RNN(I, H, impl="loop"), (T, B, I), id="RNN-loop"),
    pytest.param(lambda: rnnkit.GRUCell(I, H), (B, I), id="GRUCell"),
    pytest.param(lambda: rnnkit.MinGRU(I, H), (T, B, I), id="MinGRU"),
    pytest.param(lambda: nn.Sequential(nn.Linear(I, I), rnnkit.GRU(I, H)), (T, B, I), id="model"),
]


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("build, shape", SCRIPTED)
def test_torchscript_refused_with_a_pointer_to_torch_export(how, build, shape):
    module, inp = build(), x(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated
        with pytest.raises(TorchScriptError, match=rf"torch.jit.{how}.*torch.export.export"):
            torch.jit.script(module) if how == "script" else torch.jit.trace(module, (inp,))
    module(inp)  # and the module still runs


def test_torch_export_runs_a_layer():
    """Where the TorchScript message points: impl="loop" exports and agrees with eager."""
    layer = rnnkit.LSTM(I, H, impl="loop")
    inp = x(T, B, I)
    exported = torch.export.export(layer, (inp,))
    assert_close(exported.module()(inp), layer(inp))
