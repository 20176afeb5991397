"""A Ctrl-C while a sweep starts is never lost. Ray-free.

Until Ray Tune's own SIGINT handler is in place (inside `Tuner.fit`), a Ctrl-C raises
`KeyboardInterrupt` as Python's default handler does, and is also remembered: code that runs
during start-up can swallow the exception (an extension that checks for signals and drops the
error, a finalizer where exceptions are ignored), and the sweep would then run to its end.
`check()` raises it again once start-up reaches a point of ours: before `Tuner.fit` and in the
exporter's `setup` (Tune calls it right after installing its handler, on a new run and on a
resumed one alike).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pressed = threading.Event()


def _on_sigint(signum, frame) -> None:
    _pressed.set()
    raise KeyboardInterrupt


@contextmanager
def remembered() -> Iterator[None]:
    """Remember a Ctrl-C from here on; outside the main thread (no signals there), do nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pressed.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed outside Python, left alone
            signal.signal(signal.SIGINT, previous)
        _pressed.clear()


def check() -> None:
    """Raise `KeyboardInterrupt` if Ctrl-C was pressed since `remembered()` began, even where
    the first one was swallowed."""
    if _pressed.is_set():
        raise KeyboardInterrupt
