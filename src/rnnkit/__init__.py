"""rnnkit: RNN, LSTM and GRU from their equations, trained by a hand-written BPTT."""

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.minrnn import MinGRU, MinLSTM

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MinGRU", "MinLSTM"]
