"""The layers' `layer_norm` option (Ba et al. 2016, haste's LayerNormLSTM): its parameters, the
`cells.Cell` of each layer-normalised cell, and the check of a state dict loaded into a
layer with or without it. Equations: functional_ln.py; kernels: bptt/layer_norm.py.

Parameters per layer k and direction (suffix "_l{k}", then "_l{k}_reverse"), after torch.nn's:

    ln_ih_weight (G*H)   gain of LN(W_ih x_t), 1 at first
    ln_hh_weight (G*H)   gain of LN(W_hh h_{t-1}), 1 at first
    ln_c_weight, ln_c_bias (H)   the LSTM's LN(c_t): gain 1 and bias 0 at first
"""

import dataclasses
import functools

import torch
from torch import nn

from rnnkit import functional_ln
from rnnkit.bptt import ln_gru, ln_lstm, ln_rnn
from rnnkit.bptt.layer_norm import layer_norm_kernel
from rnnkit.cells import CELLS, Cell

OPTION = "layer_norm"


def refuse_traced(*args, **kwargs):
    """The layer-normalised cells' `Cell.op`: under torch.compile and torch.export, refused."""
    raise NotImplementedError(
        "layer_norm=True runs in the eager kernels only: torch.compile and torch.export trace "
        "rnnkit's operators, which have no layer-normalised cells"
    )


def _cell(name: str, step, loops) -> Cell:
    kernel = functools.partial(layer_norm_kernel, loops)
    return dataclasses.replace(
        CELLS[name], step=step, fast_step=step, kernel=kernel, op=refuse_traced, layer_norm=True
    )


# the layer-normalised twin of each cells.CELLS entry: its step and kernel
LN_CELLS = {
    "rnn": _cell("rnn", functional_ln.rnn_step, ln_rnn),
    "lstm": _cell("lstm", functional_ln.lstm_step, ln_lstm),
    "gru": _cell("gru", functional_ln.gru_step, ln_gru),
}


def parameter_shapes(cell: Cell, hidden_size: int, suffix: str) -> dict[str, tuple[int]]:
    """Name -> shape of one layer and direction's LayerNorm parameters (module docstring)."""
    gh = cell.gates * hidden_size
    shapes = {f"ln_ih_weight{suffix}": (gh,), f"ln_hh_weight{suffix}": (gh,)}
    if cell.states == 2:
        shapes.update(
            {f"ln_c_weight{suffix}": (hidden_size,), f"ln_c_bias{suffix}": (hidden_size,)}
        )
    return shapes


def reset(module: nn.Module, names: list[list[str]]) -> None:
    """Gains 1, biases 0 (after cells.init_uniform, which draws every parameter)."""
    with torch.no_grad():
        for name in (n for group in names for n in group):
            getattr(module, name).fill_(0.0 if name.startswith("ln_c_bias") else 1.0)


def check_state_dict(layer, state_dict) -> None:
    """A ValueError naming the keys, where a state dict lacks the LayerNorm parameters of a
    layer_norm=True layer, or holds some for a layer without the option (torch's
    load_state_dict would raise a RuntimeError listing them, without the reason)."""
    if layer.layer_norm:
        missing = [n for group in layer._ln_names for n in group if n not in state_dict]
        if missing:
            raise ValueError(
                f"the state dict lacks the parameters of {OPTION}=True: {missing}; load it into "
                f"a layer built with {OPTION}=False, or pass strict=False to keep their "
                "initial values (gains 1, biases 0)"
            )
    extra = [k for k in state_dict if k.startswith("ln_")]
    if extra and not layer.layer_norm:
        raise ValueError(
            f"the state dict holds the parameters of {OPTION}=True: {extra}; build the layer "
            f"with {OPTION}=True to load it"
        )
