"""tunetrack: Keras hyperparameter search over image-classification families, tracked in MLflow.

The public API is imported lazily, so ``import tunetrack`` (and the CLI's start-up) stays fast::

    from tunetrack import load_pipeline, run_search
    result = run_search(load_pipeline("pipelines/digits.yaml"))
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_pipeline": "space", "Pipeline": "space", "load_space": "space", "Space": "space",
    "plan_candidate": "space", "check_constraints": "space", "Plan": "space",
    "Constraints": "space", "DataConfig": "space",
    "load_dataset": "data", "Dataset": "data",
    "run_search": "search", "run_parallel": "search", "SearchResult": "search",
    "TrialRecord": "search",
    "TrialStatus": "names",
    "TunetrackError": "errors", "ConfigError": "errors", "SpaceError": "errors",
    "PipelineError": "errors", "DataError": "errors", "CandidateRejected": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'tunetrack' has no attribute {name!r}")
