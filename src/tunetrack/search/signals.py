"""Stopping a search by signal: Ctrl-C, ``kill`` (SIGTERM) and a closed terminal (SIGHUP) all
stop it the same way: the running trial and the search run are marked KILLED and the CLI prints
the command that resumes it.

The handler raises ``KeyboardInterrupt`` and also sets :data:`INTERRUPTED`, which the search
checks after every batch and before every trial (:func:`check_interrupted`): an exception raised
where Python swallows it (a gc callback of JAX, a TensorFlow object's ``__del__``) still stops
the search. Python prints such a swallowed exception ("Exception ignored in ...", with its
traceback); while a search runs, that print is dropped for the interrupt it already handles
(:func:`_quiet_interrupt`), and kept for anything else. The handlers that were installed
before are restored when the search ends.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

INTERRUPTED = threading.Event()
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _quiet_interrupt(previous: Any) -> Any:
    """A ``sys.unraisablehook`` that drops the stop signal's own ``KeyboardInterrupt``."""
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and INTERRUPTED.is_set():
            return
        previous(unraisable)

    hook.tunetrack = True  # type: ignore[attr-defined]
    return hook


def check_interrupted() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def interrupt_reason() -> str:
    """``interrupted (Ctrl-C)``, or the signal that stopped the search (``SIGTERM``...)."""
    if not _received or _received[-1] == signal.SIGINT:
        return "interrupted (Ctrl-C)"
    return f"interrupted ({signal.Signals(_received[-1]).name})"


class InterruptHandling:
    """Install the stop handler for ``signals`` on enter (and again on :meth:`install`, since
    importing TensorFlow or MLflow may replace it); restore the previous handlers on exit.

    SIGINT is handled even when the process was started with it ignored (a background job):
    tests and schedulers stop searches with it. An ignored SIGHUP (``nohup``) stays ignored.
    Outside the main thread nothing is installed (Python allows handlers only there).
    """

    def __init__(self, signals: tuple[int, ...] = HANDLED) -> None:
        self.signals = signals
        self.previous: dict[int, Any] = {}
        self.unraisable: Any = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if not getattr(sys.unraisablehook, "tunetrack", False):
            self.unraisable = sys.unraisablehook
            sys.unraisablehook = _quiet_interrupt(sys.unraisablehook)
        for sig in self.signals:
            current = signal.getsignal(sig)
            if sig == signal.SIGHUP and current is signal.SIG_IGN and sig not in self.previous:
                continue
            self.previous.setdefault(sig, current)
            signal.signal(sig, _handler)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()
        if self.unraisable is not None:
            sys.unraisablehook, self.unraisable = self.unraisable, None

    def __enter__(self) -> InterruptHandling:
        INTERRUPTED.clear()
        _received.clear()
        self.install()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()
