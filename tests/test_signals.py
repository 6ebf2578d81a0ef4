"""Signals stop a search like Ctrl-C, and the handlers are given back when it ends. No training."""

from __future__ import annotations

import os
import signal

import pytest

from tunetrack.search import signals
from tunetrack.search.signals import InterruptHandling, check_interrupted, interrupt_reason


@pytest.fixture(autouse=True)
def _handlers():
    saved = {sig: signal.getsignal(sig) for sig in signals.HANDLED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupted (Ctrl-C)"),
                                          (signal.SIGTERM, "interrupted (SIGTERM)"),
                                          (signal.SIGHUP, "interrupted (SIGHUP)")])
def test_each_signal_interrupts_and_names_itself(sig, reason):
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with InterruptHandling(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), sig)
    assert interrupt_reason() == reason
    assert signals.INTERRUPTED.is_set()
    with pytest.raises(KeyboardInterrupt):
        check_interrupted()  # the flag stops the search where the exception was swallowed


def test_previous_handlers_are_restored():
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    signal.signal(signal.SIGTERM, mine)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with InterruptHandling() as handling:
        assert signal.getsignal(signal.SIGTERM) is signals._handler
        assert signal.getsignal(signal.SIGINT) is signals._handler  # even when ignored before
        handling.install()  # installing again keeps the first originals
    assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_an_ignored_sighup_stays_ignored():
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    with InterruptHandling():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_entering_clears_an_earlier_interrupt():
    signals.INTERRUPTED.set()
    with InterruptHandling():
        check_interrupted()
        assert interrupt_reason() == "interrupted (Ctrl-C)"


def test_an_interrupt_swallowed_by_python_is_not_printed_but_still_stops(monkeypatch):
    """A signal that lands in a finalizer (a TensorFlow or JAX object's ``__del__``) raises
    where Python cannot propagate it: it prints "Exception ignored in ..." with a traceback.
    That print is dropped for the interrupt; any other swallowed error is still reported."""
    import sys

    reported: list = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    class Interrupted:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs inside __del__

    class Broken:
        def __del__(self):
            raise ValueError("a real problem")

    with InterruptHandling():
        Interrupted()  # noqa: B018 - made and collected at once
        assert signals.INTERRUPTED.is_set()
        Broken()  # noqa: B018
        with pytest.raises(KeyboardInterrupt):
            check_interrupted()
    assert [type(u.exc_value) for u in reported] == [ValueError]
    assert sys.unraisablehook == reported.append  # given back
