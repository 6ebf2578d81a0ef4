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
    "load_pipeline": "pipeline", "Pipeline": "pipeline",
    "load_space": "space", "Space": "space",
    "plan_candidate": "plan", "check_constraints": "plan", "Plan": "plan",
    "load_dataset": "data", "DataConfig": "data", "Dataset": "data",
    "run_search": "tuning", "SearchResult": "tuning", "TrialRecord": "tuning",
    "TrialStatus": "names",
    "TunetrackError": "errors", "ConfigError": "errors", "SpaceError": "errors",
    "PipelineError": "errors", "DataError": "errors", "CandidateRejected": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'tunetrack' has no attribute {name!r}")
