"""Out-of-memory aware training: a trial that runs out of memory is retried once at half its
batch size.

The error is recognised without importing any framework: TensorFlow's ``ResourceExhaustedError``
and torch's ``OutOfMemoryError`` by class name (anywhere in the class's bases), XLA/JAX by
``RESOURCE_EXHAUSTED`` in the message, and Python's ``MemoryError``; causes and contexts of a
wrapped error count too. The retry sets ``host.batch_size_override`` (the fit in ``tuners.py``
reads it) and tags the trial run ``tunetrack.retry=oom_half_batch`` with the batch size it
used; when the retry fails as well, the trial fails with :class:`OutOfMemoryRetryFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tunetrack import names
from tunetrack.errors import causes

_log = logging.getLogger("tunetrack")
T = TypeVar("T")
OOM_CLASSES = ("ResourceExhaustedError", "OutOfMemoryError")
OOM_TEXT = "RESOURCE_EXHAUSTED"


class OutOfMemoryRetryFailed(RuntimeError):
    """The trial ran out of memory, and its one retry at half the batch size failed too."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) says the device or the host ran out of memory."""
    for cause in causes(error):
        if isinstance(cause, MemoryError):
            return True
        if any(kind.__name__ in OOM_CLASSES for kind in type(cause).__mro__):
            return True
        if OOM_TEXT in str(cause):
            return True
    return False


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}".rstrip(": ")


def with_retry(host: Any, attempt: Callable[[], T], batch_size: int, log: Any) -> T:
    """``attempt()``; on out of memory, once more at half ``batch_size`` (recorded on ``log``,
    the trial run). A trial already halved (an earlier seed repeat) is not halved again."""
    try:
        return attempt()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if host.batch_size_override is not None:
            raise OutOfMemoryRetryFailed(
                f"batch size {batch_size} ran out of memory and the retry at "
                f"{host.batch_size_override} failed too: {_describe(exc)}") from exc
        first = exc
    half = batch_size // 2
    if half < 1:
        raise OutOfMemoryRetryFailed(f"batch size {batch_size} ran out of memory and cannot be "
                                     f"halved: {_describe(first)}") from first
    _log.warning("out of memory at batch size %d (%s); retrying once at %d", batch_size,
                 _describe(first), half)
    host.batch_size_override = half
    if hasattr(host, "_live_run"):  # the retry's epochs go live to MLflow too (tuners.py)
        host._live_run = None
    log.tags({names.TAG_RETRY: names.RETRY_OOM_HALF_BATCH, names.TAG_BATCH_SIZE: half}).flush()
    try:
        return attempt()
    except Exception as exc:
        raise OutOfMemoryRetryFailed(
            f"batch size {batch_size} ran out of memory and the retry at {half} failed too: "
            f"{_describe(exc)}") from exc
