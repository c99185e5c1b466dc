"""Whole-sequence kernels: one `torch.autograd.Function` per cell with a hand-written BPTT.

Each kernel runs one layer in one direction over a time-major sequence. The forward computes
the input projections of all steps in one GEMM and loops over time only for the recurrence;
the backward runs a reverse-time loop for the state gradients only, then gets the weight and
input gradients as one GEMM each over all steps. `docs/bptt.md` derives every line.

    T: time steps, B: batch, I: input size, H: hidden size, G: gates (RNN 1, LSTM 4, GRU 3)
    x (T, B, I)   out (T, B, H)   h0, h_n, c0, c_n (B, H)

Variable lengths follow PackedSequence's layout: the batch is sorted by length (longest
first) and `batch_sizes[t]` rows are running at step t, so rows [0, b_t) are a prefix and the
state of a running row at t-1 is `out[t-1, row]`. Padded outputs are zero, each row's final
state is taken at its own last step, and padded steps cost no FLOPs in the recurrence
(the input projection and the weight-gradient GEMMs still run over all T * B rows).

Each kernel's time loops come twice, with the same inputs and outputs: in Python
(`_forward_loop`, `_backward_loop`), on the true h, c and gates as the docstrings write them,
the reference and the path for CUDA; and in C++ (`native.py`, `native.cpp`), the default on
the CPU, which computes tanh(a) as 2 sigmoid(2a) - 1 in scaled coordinates (native.cpp's
header and docs/bptt.md (a)). A backward runs the loop its forward ran (`ctx.native`).

The same kernels are PyTorch operators in `ops.py` (rnnkit::rnn, rnnkit::lstm, rnnkit::gru,
their backwards and rnnkit::lstm_cell), in the caller's row order with `lengths`: what the
layers run under torch.compile and torch.export.
"""

from rnnkit.bptt.gru import GRUFunction, gru
from rnnkit.bptt.lstm import LSTMFunction, lstm, lstm_step
from rnnkit.bptt.ops import gru_layer, lstm_layer, rnn_layer
from rnnkit.bptt.rnn import RNNFunction, rnn

__all__ = [
    "GRUFunction",
    "LSTMFunction",
    "RNNFunction",
    "gru",
    "gru_layer",
    "lstm",
    "lstm_layer",
    "lstm_step",
    "rnn",
    "rnn_layer",
]
