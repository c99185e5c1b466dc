"""A tiny task for the training-loop tests: a GRU(4, 8) regressing the running mean of x[..., 0].

B: batch, T: time, I = 4 input features
"""

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit

T = 6


class Toy(nn.Module):
    """`output, loss = model(x, y)`; with `carry` it keeps its last hidden state between training
    batches, detached, as truncated BPTT does."""

    def __init__(self, dropout: float = 0.0, carry: bool = False):
        super().__init__()
        self.rnn = rnnkit.GRU(4, 8, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8, 1)
        self.carry = carry
        self.h = None  # (1, B, 8) when carrying

    def forward(self, x, y):
        h0 = self.h if self.carry and self.training else None
        out, h = self.rnn(x, h0)  # (B, T, 8)
        if self.carry and self.training:
            self.h = h.detach()
        pred = self.head(self.drop(out))  # (B, T, 1)
        return pred, F.mse_loss(pred, y)

    def get_state(self):
        return {"h": self.h}

    def set_state(self, state):
        self.h = state["h"]


def make_batch(seed: int, batch: int = 8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, 4, generator=g)  # (B, T, I)
    y = x[..., :1].cumsum(1) / torch.arange(1, T + 1).view(1, T, 1)  # (B, T, 1)
    return x, y


def batches(step: int):
    """Global batch number `step`: the same for a given step in every run."""
    return make_batch(1000 + step)


def valid_fn(model) -> dict:
    x, y = make_batch(10**6, batch=16)
    return {"loss": model(x, y)[1].item()}
