"""rnnkit's layers through torch.export with dynamic batch and time: the exported program,
saved and loaded back, gives eager's results at other batch sizes and lengths."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit

I, H = 3, 4
TOL = {"atol": 1e-5, "rtol": 1e-4}
CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


class Encoder(nn.Module):
    """A 2-layer bidirectional batch-first layer: (output, h_n) with optional lengths."""

    def __init__(self, cell):
        super().__init__()
        self.rnn = CELLS[cell](I, H, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x, lengths=None):
        out, last = self.rnn(x, lengths=lengths)
        return out, (last[0] if isinstance(last, tuple) else last)


def inputs(T, B, seed):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    return torch.randn(B, T, I, generator=gen), lengths


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_export_save_load_dynamic_batch_and_time(cell, with_lengths, tmp_path):
    torch.manual_seed(0)
    model = Encoder(cell).eval()
    batch, time = torch.export.Dim("batch", min=1, max=512), torch.export.Dim("time", max=4096)
    x, lengths = inputs(7, 5, seed=0)
    if with_lengths:
        args, dynamic = (x, lengths), {"x": {0: batch, 1: time}, "lengths": {0: batch}}
    else:
        args, dynamic = (x,), {"x": {0: batch, 1: time}}
    with torch.no_grad():
        program = torch.export.export(model, args, dynamic_shapes=dynamic)
    targets = {n.target for n in program.graph.nodes if n.op == "call_function"}
    assert getattr(torch.ops.rnnkit, cell).default in targets  # one node per layer, direction
    path = tmp_path / f"{cell}.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    for T, B in [(7, 5), (3, 2), (11, 1), (1, 3)]:
        x, lengths = inputs(T, B, seed=T)
        args = (x, lengths) if with_lengths else (x,)
        with torch.no_grad():
            assert_close(loaded(*args), model(*args), **TOL, msg=f"T={T}, B={B}")


def test_export_refuses_a_packed_sequence():
    from torch.nn.utils.rnn import pack_padded_sequence

    x, lengths = inputs(5, 3, seed=1)
    pack = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with pytest.raises(NotImplementedError, match="padded tensor and lengths="):
        torch.export.export(Encoder("gru").rnn, (pack,))
