"""Seeding, and the random-number-generator states a checkpoint carries, as JSON-ready values.

`rng_state()` captures torch (CPU and every initialised CUDA device), numpy and Python's `random`;
`set_rng_state(state)` puts them back, so a resumed run draws the same dropout masks and shuffles.
Byte states are base64 text and the rest plain numbers and lists: no pickling anywhere.
"""

import base64
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy and torch (all devices) with `seed`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy accepts 0 <= seed < 2**32 only
    torch.manual_seed(seed)  # also seeds every CUDA device


def _encode_bytes(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _decode_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def rng_state() -> dict:
    """The current generator states of torch, numpy and `random` as a JSON-ready dict."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # never initialise CUDA here
        cuda = [_encode_bytes(s) for s in torch.cuda.get_rng_state_all()]
    return {
        "torch": _encode_bytes(torch.get_rng_state()),
        "cuda": cuda,
        "numpy": {
            "kind": kind,
            "keys": base64.b64encode(keys.astype("<u4").tobytes()).decode("ascii"),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": version,
            "state": base64.b64encode(np.array(internal, dtype="<u4").tobytes()).decode("ascii"),
            "gauss_next": gauss_next,
        },
    }


def set_rng_state(state: dict) -> None:
    """Restore the generator states captured by `rng_state()`.

    CUDA states are restored for as many devices as both the state and this machine have, so a
    state captured on a GPU machine restores the CPU generators on a CPU-only one.
    """
    torch.set_rng_state(_decode_bytes(state["torch"]))
    if state.get("cuda") and torch.cuda.is_available():
        n = min(len(state["cuda"]), torch.cuda.device_count())
        for device, text in enumerate(state["cuda"][:n]):
            torch.cuda.set_rng_state(_decode_bytes(text), device)
    np_state = state["numpy"]
    keys = np.frombuffer(base64.b64decode(np_state["keys"]), dtype="<u4").astype(np.uint32)
    np.random.set_state(
        (
            np_state["kind"],
            keys,
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = state["python"]
    internal = np.frombuffer(base64.b64decode(py_state["state"]), dtype="<u4")
    random.setstate((py_state["version"], tuple(internal.tolist()), py_state["gauss_next"]))
