"""The gradient lab: long-range benchmarks generated on the fly (tasks), training a LabModel on
them (run), and measurements of gradient flow through time (gradients) with their figure
(plot). `rnnkit lab` is its command line."""

from rnnkit.lab.gradients import (
    hidden_grad_norms,
    jacobian_norms,
    scale_spectral_radius_,
    spectral_radius,
)
from rnnkit.lab.run import load, train
from rnnkit.lab.tasks import ADDING_BASELINE_MSE, adding_problem, copy_baseline_ce, copy_memory

__all__ = [
    "ADDING_BASELINE_MSE",
    "adding_problem",
    "copy_baseline_ce",
    "copy_memory",
    "hidden_grad_norms",
    "jacobian_norms",
    "load",
    "scale_spectral_radius_",
    "spectral_radius",
    "train",
]
