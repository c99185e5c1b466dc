"""LabModel: one recurrent layer stack and a linear read-out, for the long-range benchmarks.

    adding: x (B, T, 2) -> h_1..h_T = rnn(x) -> y_hat = W_hy h_T + b_y  (B,);  loss MSE
    copy:   x (B, T') token ids -> one-hot (B, T', 10) -> h_t = rnn(.) ->
            logits_t = W_hy h_t + b_y  (B, T', 9);  loss cross-entropy averaged over all steps

Call contract: `output, loss = model(inputs, targets)` (loss None without targets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import Tensor, nn

from rnnkit.init import SCHEMES, initialize
from rnnkit.lab.tasks import COPY_CLASSES, COPY_VOCAB
from rnnkit.layers import LAYERS
from rnnkit.train.options import option, positive_int

TASKS = ("adding", "copy")


@dataclass
class LabModelConfig:
    task: str  # "adding" | "copy"
    cell: str = option("lstm", "", choices=tuple(LAYERS))
    hidden: int = option(128, "hidden units", type=positive_int, metavar="N")
    layers: int = option(1, "", type=positive_int, metavar="N")
    nonlinearity: str = option("tanh", "of the Elman RNN", choices=("tanh", "relu"))
    init: str = option(
        "default",
        "default: torch.nn's uniform; orthogonal: orthogonal W_hh blocks (LSTM forget bias 1); "
        "identity: IRNN's W_hh = I (use with --cell rnn --nonlinearity relu); chrono: gate "
        "biases for dependencies up to the sequence length (LSTM, GRU)",
        choices=SCHEMES,
    )
    t_max: int | None = None  # the chrono initialisation's longest dependency

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {tuple(LAYERS)}, got {self.cell!r}")
        if self.init not in SCHEMES:
            raise ValueError(f"init must be one of {SCHEMES}, got {self.init!r}")
        for key in ("hidden", "layers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu, got {self.nonlinearity!r}")
        if self.nonlinearity == "relu" and self.cell != "rnn":
            raise ValueError("nonlinearity relu is for the Elman RNN (cell rnn)")
        if self.cell not in ("rnn", "lstm", "gru") and self.init != "default":
            raise ValueError(f"init {self.init!r} is for rnn, lstm and gru, not {self.cell}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LabModelConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown lab model config keys: {sorted(unknown)}")
        return cls(**data)


class LabModel(nn.Module):
    def __init__(self, task: str, **options):
        super().__init__()
        self.config = c = LabModelConfig(task, **options)
        n_in = 2 if c.task == "adding" else COPY_VOCAB
        kw = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.rnn = LAYERS[c.cell](n_in, c.hidden, c.layers, batch_first=True, **kw)
        self.head = nn.Linear(c.hidden, 1 if c.task == "adding" else COPY_CLASSES)
        if c.cell in ("rnn", "lstm", "gru"):  # the min cells keep their own initialisation
            initialize(self.rnn, c.init, t_max=c.t_max)

    @classmethod
    def from_config(cls, config: LabModelConfig | dict) -> LabModel:
        if isinstance(config, dict):
            config = LabModelConfig.from_dict(config)
        return cls(**config.to_dict())

    def forward(self, inputs: Tensor, targets: Tensor | None = None):
        if self.config.task == "adding":
            h, _ = self.rnn(inputs)  # (B, T, H)
            y_hat = self.head(h[:, -1]).squeeze(-1)  # (B,)
            loss = None if targets is None else nn.functional.mse_loss(y_hat, targets)
            return y_hat, loss
        x = nn.functional.one_hot(inputs, COPY_VOCAB).to(self.head.weight.dtype)
        h, _ = self.rnn(x)  # (B, T', H)
        logits = self.head(h)  # (B, T', 9)
        if targets is None:
            return logits, None
        return logits, nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def accuracy_of_copy(logits: Tensor, targets: Tensor) -> float:
    """The fraction of the 10 remembered symbols copied right."""
    k = 10
    return float((logits[:, -k:].argmax(-1) == targets[:, -k:]).float().mean())
