"""Ctrl-C and SIGTERM as a polite request: the training loop finishes its step, saves, returns."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

logger = logging.getLogger(__name__)
_received: list[int] = []  # the stop requests of this process's latest training, in order


def received() -> int | None:
    """The signal that stopped the latest training in this process, or None."""
    return _received[0] if _received else None


@contextlib.contextmanager
def stop_requests():
    """While open, SIGINT and SIGTERM append to the yielded list instead of ending the process;
    a second one raises KeyboardInterrupt at once. The previous handlers come back on exit."""
    requests: list[int] = []
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield requests  # handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        if requests:
            raise KeyboardInterrupt
        requests.append(signum)
        _received.append(signum)
        name = signal.Signals(signum).name
        logger.warning("%s: finishing this step, saving a checkpoint, then stopping", name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requests
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
