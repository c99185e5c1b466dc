"""An exponential moving average of the weights (`--ema D`), validated and kept as OUT/best:

    w_avg = w after the first update, then   w_avg <- d_n w_avg + (1 - d_n) w,
    d_n = min(D, (1 + n) / (10 + n)),   n the updates averaged so far

w the model's parameters and floating-point buffers (other buffers are copied). The ramp d_n
(TensorFlow's ExponentialMovingAverage with num_updates) keeps the first, poor weights from
lingering in the average: with D = 0.999 they would still weigh 37 % after 1,000 updates.
The averaged copy is torch.optim.swa_utils.AveragedModel's; its state_dict (the copy's
weights and the update count n) goes into OUT/last, so a resumed run goes on averaging.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel


def averaged(module: nn.Module, decay: float) -> AveragedModel | None:
    """An AveragedModel of `module` updating as above, or None for decay 0 (off)."""
    if not decay:
        return None

    def update(average: list, current: list, n) -> None:
        d = min(decay, (1 + float(n)) / (10 + float(n)))  # n: updates averaged before this one
        for a, w in zip(average, current, strict=True):
            if a.is_floating_point():
                a.lerp_(w, 1 - d)
            else:  # an integer buffer (a count): the model's own
                a.copy_(w)

    return AveragedModel(module, multi_avg_fn=update, use_buffers=True)
