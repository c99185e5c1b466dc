"""The one check of a `--device` value: a device torch can name and this machine has, else a
ValueError naming the value and the devices there are ("available here: cpu, cuda:0")."""

from __future__ import annotations

import torch


def check_device(text: str, flag: str = "--device") -> torch.device:
    """`text` as a torch.device, or ValueError when torch does not know it (`banana`), this torch
    cannot use it (`cuda` on a CPU-only build) or this machine does not have it (`cuda:7`)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"{flag} {text!r} is not a device; give one of those available here: {available()}"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        problem = _cuda_problem(device)
    elif device.type == "mps":
        problem = None if torch.backends.mps.is_available() else "this machine has no MPS device"
    else:
        backend = getattr(torch, device.type, None)
        usable = getattr(backend, "is_available", None)
        problem = None if usable is not None and usable() else f"no {device.type} device here"
    if problem is not None:
        raise ValueError(f"{flag} {text}: {problem}; available here: {available()}")
    return device


def available() -> str:
    """The devices this process can use, as `--device` values: "cpu", "cpu, cuda:0, cuda:1"."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return ", ".join(names)


def _cuda_problem(device: torch.device) -> str | None:
    if torch.version.cuda is None and torch.version.hip is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    if not torch.cuda.is_available():
        return "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"this machine has {count} CUDA device{'s' if count > 1 else ''}"
    return None
