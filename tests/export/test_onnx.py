"""rnnkit's layers exported to ONNX (torch.onnx's dynamo exporter with rnnkit's translations),
checked by onnx's checker and run by onnxruntime at batch sizes and lengths other than the
exported ones. ONNX's RNN/LSTM/GRU compute in float32 with their own order of operations: the
tolerance, 1e-5, is about 100 float32 ulps of these O(1) outputs."""

import warnings

import pytest
import torch

import rnnkit
import rnnkit.export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

LAYERS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
TOL = 1e-5


class Tagger(torch.nn.Module):
    """A recurrent layer and a linear head; returns the head's outputs and h_n."""

    def __init__(self, cell: str, **options):
        super().__init__()
        self.rnn = LAYERS[cell](5, 7, **options)
        D = 2 if options.get("bidirectional") else 1
        self.head = torch.nn.Linear(7 * D, 3)

    def forward(self, x, lengths=None, hx=None):
        y, state = self.rnn(x, hx, lengths=lengths)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(y), h_n


def export(model, args, dynamic_shapes, tmp_path, names):
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rnnkit.export.onnx(model, args, path, dynamic_shapes=dynamic_shapes, input_names=names)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    return proto, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(session, inputs: dict) -> list:
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


def assert_close(got, want):
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(torch.from_numpy(g), w.detach(), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_stack_with_lengths_runs_in_onnxruntime_at_other_shapes(cell, tmp_path):
    torch.manual_seed(0)
    model = Tagger(cell, num_layers=2, bidirectional=True).eval()
    T, B = torch.export.Dim("T", min=2, max=512), torch.export.Dim("B", min=2, max=512)
    x, lengths = torch.randn(6, 4, 5), torch.tensor([6, 3, 5, 1])
    proto, session = export(model, (x, lengths), ({0: T, 1: B}, {0: B}), tmp_path, ["x", "lengths"])
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count(ONNX_OP[cell]) == 4  # 2 layers x 2 directions, ONNX's own operator
    assert "Loop" not in ops and "Scan" not in ops
    for T_, B_ in ((6, 4), (11, 3), (3, 7)):
        x = torch.randn(T_, B_, 5)
        lengths = torch.randint(1, T_ + 1, (B_,))
        assert_close(run(session, {"x": x, "lengths": lengths}), model(x, lengths))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_batch_first_without_bias_with_initial_state(cell, tmp_path):
    torch.manual_seed(1)
    options = {"batch_first": True, "bias": False}
    if cell == "rnn":
        options["nonlinearity"] = "relu"
    model = Tagger(cell, **options).eval()
    B, T = torch.export.Dim("B", min=2, max=512), torch.export.Dim("T", min=2, max=512)
    x = torch.randn(3, 8, 5)
    hx = torch.randn(1, 3, 7)
    state = (hx, torch.randn(1, 3, 7)) if cell == "lstm" else hx
    names = ["x", "h0", "c0"] if cell == "lstm" else ["x", "h0"]
    shapes = ({1: B}, {1: B}) if cell == "lstm" else {1: B}
    _, session = export(model, (x, None, state), ({0: B, 1: T}, None, shapes), tmp_path, names)
    for B_, T_ in ((3, 8), (5, 2), (2, 13)):
        x, hx = torch.randn(B_, T_, 5), torch.randn(1, B_, 7)
        state = (hx, torch.randn(1, B_, 7)) if cell == "lstm" else hx
        flat = list(state) if cell == "lstm" else [state]
        got = run(session, dict(zip(names, [x, *flat], strict=True)))
        assert_close(got, model(x, None, state))


def test_a_float16_layer_exports_with_its_recurrence_in_float32(tmp_path):
    """A half layer computes in float32 (rnnkit.precision): ONNX gets Cast nodes around a float32
    LSTM node, and onnxruntime agrees with eager to float16's rounding of the head's output
    (eps 2**-10 relative; outputs are O(1))."""
    torch.manual_seed(2)
    model = Tagger("lstm").eval().half()
    x = torch.randn(4, 2, 5).half()
    proto, session = export(model, (x,), None, tmp_path, ["x"])
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 1
    for g, w in zip(run(session, {"x": x}), model(x), strict=True):
        torch.testing.assert_close(torch.from_numpy(g), w.detach(), atol=4e-3, rtol=4e-3)


def test_the_torchscript_based_exporter_points_to_the_dynamo_one(tmp_path):
    from rnnkit.errors import TorchScriptError

    model = Tagger("gru").eval()
    with warnings.catch_warnings(), pytest.raises(TorchScriptError, match="rnnkit.export.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(4, 2, 5),), tmp_path / "m.onnx", dynamo=False)


def test_an_lstm_with_projections_is_refused_with_one_clear_message(tmp_path):
    """ONNX's LSTM has no projection (torch.nn's proj_size): rnnkit.export.onnx refuses the
    model before tracing, and the operator's translation refuses a w_hr, so no wrong model is
    ever written."""
    from rnnkit.export import onnx_ops

    model = Tagger("lstm").eval()
    model.rnn = rnnkit.LSTM(5, 7, proj_size=3)
    model.head = torch.nn.Linear(3, 3)
    path = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match=r"ONNX's LSTM has no projection \(proj_size=P\).*=3"):
        rnnkit.export.onnx(model, (torch.randn(4, 2, 5),), path)
    assert not path.exists()
    for translation, n in ((onnx_ops.lstm, 10), (onnx_ops.lstm_cell, 7)):
        with pytest.raises(ValueError, match=r"ONNX's LSTM has no projection"):
            translation(*[None] * n, w_hr=object())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_plain_torch_onnx_export_writes_onnxs_own_operators(cell, tmp_path):
    """torch.onnx.export(model, args, dynamo=True), as a client of torch.nn's layers calls it,
    without rnnkit's translation table: the layers write ONNX's RNN/LSTM/GRU themselves
    (export/symbolic.py), and onnxruntime agrees with eager at other shapes."""
    torch.manual_seed(3)
    options = {"num_layers": 2, "bidirectional": True, "batch_first": True}
    if cell == "rnn":
        options["nonlinearity"] = "relu"
    model = Tagger(cell, **options).eval()
    B, T = torch.export.Dim("B", min=2, max=512), torch.export.Dim("T", min=2, max=512)
    x, lengths = torch.randn(4, 6, 5), torch.tensor([6, 3, 5, 1])
    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x, lengths),
            path,
            dynamo=True,
            dynamic_shapes=({0: B, 1: T}, {0: B}),
            input_names=["x", "lengths"],
            verbose=False,
        )
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count(ONNX_OP[cell]) == 4  # 2 layers x 2 directions
    assert "Loop" not in ops and "Scan" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B_, T_ in ((4, 6), (3, 11), (7, 3)):
        x = torch.randn(B_, T_, 5)
        lengths = torch.randint(1, T_ + 1, (B_,))
        lengths[0] = T_
        assert_close(run(session, {"x": x, "lengths": lengths}), model(x, lengths))


def test_a_plain_torch_onnx_export_never_writes_a_projection(tmp_path, capsys):
    """The layer refuses proj_size in the exporter's first (non-strict) trace; the exporter then
    retries under Dynamo (strict=True), where torch.onnx.is_in_onnx_export() reads False and
    its final error is its own (no ONNX function for rnnkit::lstm): no file either way.
    rnnkit.export.onnx refuses before tracing, with the clear message (test above)."""
    model = Tagger("lstm").eval()
    model.rnn = rnnkit.LSTM(5, 7, proj_size=3)
    model.head = torch.nn.Linear(3, 3)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings(), pytest.raises(Exception, match="rnnkit.lstm"):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(4, 2, 5),), path, dynamo=True, verbose=False)
    assert not path.exists()
