"""Running a search: keras-tuner explores, tunetrack plans, trains and records every trial.

The public names are imported lazily, so ``import tunetrack.search`` (and the CLI) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_search": "session", "SearchSession": "session", "prepare": "session",
    "run_parallel": "workers", "run_worker": "workers",
    "SearchResult": "records", "TrialRecord": "records",
    "Reporter": "progress", "ConsoleReporter": "progress", "QuietReporter": "progress",
    "TrialRunner": "trial",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tunetrack.search' has no attribute {name!r}")
    return getattr(import_module(f"tunetrack.search.{_EXPORTS[name]}"), name)
