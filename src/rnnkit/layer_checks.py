"""The checks RNN, LSTM and GRU make of their arguments besides the input sequence
(`cells.check_sequence`): impl, torch.nn's proj_size rules, and the initial state.

    L: num_layers, D: directions (1 or 2), B: batch, H: hidden size,
    P: an LSTM's proj_size (h's size; H where proj_size = 0)
    h_0 (L*D, B, P), c_0 (L*D, B, H), or (L*D, P), (L*D, H) unbatched
"""

from torch import Tensor

from rnnkit import precision
from rnnkit.cells import check_size, describe_state
from rnnkit.errors import ArgumentTypeError, ShapeError

# "auto": torch's fused operator (cuDNN) on CUDA for the plain cells, else "bptt" (fused.py);
# "bptt": the hand-written kernels; "fused": torch's fused operator anywhere; "loop": the
# cell's step looped under autograd, the reference
IMPLS = ("auto", "bptt", "fused", "loop")


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def check_proj_size(proj_size, hidden_size: int) -> int:
    """torch.nn.LSTM's rules: an int in [0, hidden_size), 0 for no projection (a bool or a
    float is a TypeError, a negative value a ShapeError, >= hidden_size a ValueError)."""
    check_size("proj_size", proj_size, allow_zero=True)
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size must be < hidden_size={hidden_size}, got {proj_size}")
    return proj_size


def reject_proj_size(layer: str, proj_size) -> None:
    """RNN and GRU take no proj_size: torch.nn raises this ValueError even for proj_size=0."""
    if proj_size is not None:
        raise ValueError(
            f"proj_size is an LSTM option (projections of h); {layer} takes none, "
            f"got proj_size={proj_size!r}"
        )


def check_state(s, name: str, want: tuple, ref: Tensor) -> Tensor:
    """One state tensor of shape `want`, on the device of the input `ref` and of its dtype
    (any floating dtype under torch.autocast, as torch.nn takes it: `precision.py`)."""
    if not isinstance(s, Tensor):
        raise ArgumentTypeError(f"{name} must be a Tensor of shape {want}, got {describe_state(s)}")
    if tuple(s.shape) != want:
        raise ShapeError(f"{name} must have shape {want}, got {tuple(s.shape)}")
    same_dtype = s.dtype == ref.dtype or (
        s.is_floating_point() and precision.autocasting(ref.device.type, ref.dtype)
    )
    if not same_dtype or s.device != ref.device:
        raise ArgumentTypeError(
            f"{name} must be {ref.dtype} on {ref.device} like the input, "
            f"got {s.dtype} on {s.device}"
        )
    return s


def initial_state(layer, hx, x: Tensor, batched: bool) -> list[Tensor]:
    """[h_0] or [h_0, c_0] of `layer` (its cell's state arity), h_0 (L*D, B, P), c_0
    (L*D, B, H), contiguous; zeros of the input's dtype when hx is None. x (T, B, I), B = 1
    unbatched."""
    B, n, H = x.shape[1], layer.cell.states, layer.hidden_size
    LD = layer.num_layers * layer.num_directions
    wants = [(LD, B, layer.proj_size or H), (LD, B, H)][:n]
    if hx is None:
        return [x.new_zeros(want) for want in wants]
    if n == 2:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ArgumentTypeError(
                f"hx for {layer.cell.torch_name} must be a tuple (h_0, c_0), "
                f"got {describe_state(hx)}"
            )
        names = ("h_0", "c_0")
    else:
        hx, names = (hx,), ("hx",)
    given = [want if batched else (want[0], want[2]) for want in wants]
    states = [check_state(s, m, g, x) for s, m, g in zip(hx, names, given, strict=True)]
    return [(s if batched else s.unsqueeze(1)).contiguous() for s in states]


def check_layer_norm(layer_norm) -> bool:
    """layer_norm is a bool, as torch.nn's flags (a TypeError otherwise, 0 and 1 included)."""
    if not isinstance(layer_norm, bool):
        raise TypeError(
            f"layer_norm must be a bool, got {type(layer_norm).__name__} {layer_norm!r}"
        )
    return layer_norm
