"""minGRU and minLSTM (Feng et al. 2024): recurrences whose gates see only the input, solved
over time by a log-space parallel scan (Heinsen 2023) or step by step; see docs/minrnn.md."""

from rnnkit.minrnn.layers import MinGRU, MinLSTM
from rnnkit.minrnn.scan import log_scan, scan_loop

__all__ = ["MinGRU", "MinLSTM", "log_scan", "scan_loop"]
