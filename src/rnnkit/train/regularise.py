"""The recurrent layers' regularisers as task model options, declared once: the fields of
`RegulariserOptions` (--recurrent-dropout, --weight-drop, --zoneout, and --layer-norm, the
layer-normalised cells), which a task's model config inherits, and `layer_kwargs`, what its
recurrent layer takes from them."""

from dataclasses import dataclass

from rnnkit.regularisers import check_probability
from rnnkit.train.options import fraction, option

NAMES = ("recurrent_dropout", "weight_drop", "zoneout")
# the cells whose layers take each, layer_norm too (MinGRU and MinLSTM take none)
CELLS = dict.fromkeys((*NAMES, "layer_norm"), ("lstm", "gru", "rnn"))


@dataclass(kw_only=True)
class RegulariserOptions:
    """The regularisers a task model passes to its recurrent layer (regularisers.py); 0: off."""

    recurrent_dropout: float = option(  # Gal & Ghahramani: one mask per sequence on h_{t-1}
        0.0, "dropout on h_{t-1} in W_hh h_{t-1}, one mask per sequence",
        type=fraction, metavar="P",
    )  # fmt: skip
    weight_drop: float = option(  # Merity et al.: DropConnect on W_hh, one mask per batch
        0.0, "DropConnect on the recurrent weights W_hh, one mask per batch",
        type=fraction, metavar="P",
    )  # fmt: skip
    zoneout: float = option(  # Krueger et al.: a unit keeps its last value with probability P
        0.0, "zoneout on h (and the LSTM's c), probability P of keeping a unit",
        type=fraction, metavar="P",
    )  # fmt: skip
    layer_norm: bool = option(  # Ba et al.: LayerNorm of W_ih x, W_hh h (and the LSTM's c)
        False, "layer-normalised cells: LayerNorm on the input and recurrent projections "
        "(and the LSTM's cell state)", action="store_true",
    )  # fmt: skip

    def check_regularisers(self, cell: str) -> None:
        """Each a probability in [0, 1), and 0 for a cell whose layer has no such option."""
        for name in NAMES:
            p = check_probability(name, getattr(self, name))
            if p and cell not in CELLS[name]:
                raise ValueError(
                    f"{name} is an option of the cells {CELLS[name]}; cell {cell!r} takes "
                    f"none, got {name}={p}"
                )
        if not isinstance(self.layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {self.layer_norm!r}")
        if self.layer_norm and cell not in CELLS["layer_norm"]:
            raise ValueError(
                f"layer_norm is an option of the cells {CELLS['layer_norm']}; cell {cell!r} "
                "takes none"
            )

    def layer_kwargs(self) -> dict:
        """The non-zero options, as the layer's keywords."""
        kwargs = {name: getattr(self, name) for name in NAMES if getattr(self, name)}
        return {**kwargs, "layer_norm": True} if self.layer_norm else kwargs
