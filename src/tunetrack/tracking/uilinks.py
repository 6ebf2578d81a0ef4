"""Links into MLflow 3's UI that open on a search's runs, and waiting for the UI to answer.

MLflow 3's UI opens an experiment on its GenAI overview (traces) unless told otherwise;
``?workflowType=machine_learning`` in the URL gives the Runs / Models view.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

ML_VIEW = "workflowType=machine_learning"
DEFAULT_UI = "http://127.0.0.1:5000"


def runs_url(base: str, experiment_id: str, objective: str | None = None,
             direction: str = "max") -> str:
    """The experiment's runs table: ``BASE/#/experiments/ID/runs?workflowType=machine_learning``,
    ranked by the trials' ``best_<objective>`` when given (only trials have that metric)."""
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML_VIEW}"
    if objective:
        url += (f"&orderByKey=metrics.%60best_{objective}%60"
                f"&orderByAsc={'true' if direction == 'min' else 'false'}")
    return url


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def ui_base(tracking_uri: str) -> str:
    """Where a user sees this store: its server when it is one, else ``tunetrack ui``'s default."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_UI


def wait_until_up(base: str, alive: Callable[[], bool], timeout: float = 180.0,
                  poll: float = 0.5) -> bool:
    """Poll ``BASE/health`` until it answers 200 (True), ``alive()`` turns False or ``timeout``
    passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        if not alive():
            return False
        time.sleep(poll)
    return False


def latest_search() -> tuple[str, str, str, str] | None:
    """(experiment id, run id, objective, direction) of the newest search run, or None."""
    from tunetrack.errors import TrackingError
    from tunetrack.tracking.compare import find_search, search_objective
    from tunetrack.tracking.storeread import reader

    try:
        run = find_search(reader(), None, None)
    except TrackingError:
        return None
    return (run.info.experiment_id, run.info.run_id, *search_objective(run))


__all__ = ["DEFAULT_UI", "latest_search", "run_url", "runs_url", "ui_base", "wait_until_up"]
