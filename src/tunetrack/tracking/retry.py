"""Retrying a write while SQLite says the store is locked: several local workers share one
SQLite store, which takes one writer at a time. Below ``store`` and ``writer``, which both use it
(``store`` re-exports it).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tunetrack.errors import causes

T = TypeVar("T")

LOCKED_RETRIES = 8
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "busy"/"locked" (another writer holds the database).

    Decided by the sqlite3 error code MLflow's exception wraps (SQLITE_BUSY, SQLITE_LOCKED), not by
    its text: a read-only database, a missing folder or a full disk is not worth a retry.
    """
    for cause in causes(error):
        if isinstance(cause, sqlite3.OperationalError):
            code = getattr(cause, "sqlite_errorcode", None)
            return code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return False


def retry_locked(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with backoff while SQLite says it is locked.

    Several local workers writing one SQLite store collide (one writer at a time); a bounded
    retry (about 25 s in all) keeps every metric instead of failing the trial. Any other error
    is raised at once (see :func:`is_locked`).
    """
    for attempt in range(LOCKED_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not is_locked(exc) or attempt == LOCKED_RETRIES - 1:
                raise
            time.sleep(min(0.1 * 2 ** attempt, 8.0))
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["LOCKED_RETRIES", "is_locked", "retry_locked"]
