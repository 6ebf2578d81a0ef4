"""What promotion reads before judging: the experiment, the search run, its completed trials
ranked on validation, and the search's sealed test split rebuilt from what the search recorded.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from tunetrack import names
from tunetrack.errors import DataError, TrackingError, did_you_mean

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from tunetrack.data import Dataset

DATA_CONFIG_FILE = "data_config.json"


def experiment_id(mlclient: MlflowClient, experiment: str) -> str:
    found = mlclient.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        known = [e.name for e in mlclient.search_experiments()]
        raise TrackingError(f"unknown experiment {experiment!r}{did_you_mean(experiment, known)};"
                            f" experiments in this store: {', '.join(known) or 'none'}")
    return str(found.experiment_id)


def search_run(mlclient: MlflowClient, experiment_id: str, experiment: str,
               search: str | None) -> Run:
    """The search run ``search``, or the experiment's latest search when it is None."""
    from mlflow.exceptions import MlflowException

    role = f"tags.`{names.TAG_ROLE}` = '{names.ROLE_SEARCH}'"
    if search is None:
        runs = mlclient.search_runs([experiment_id], role, order_by=["attributes.start_time DESC"],
                                    max_results=1)
        if not runs:
            raise TrackingError(f"experiment {experiment!r} has no search run; run "
                                f"'tunetrack search' first")
        return runs[0]
    try:
        run = mlclient.get_run(search)
    except MlflowException as exc:
        raise TrackingError(f"unknown search run {search!r}: {exc.message}") from exc
    if run.info.experiment_id != experiment_id or \
            run.data.tags.get(names.TAG_ROLE) != names.ROLE_SEARCH:
        raise TrackingError(f"run {search} is not a search run of experiment {experiment!r} "
                            f"(its {names.TAG_ROLE} is {run.data.tags.get(names.TAG_ROLE)!r})")
    return run


def ranked_trials(mlclient: MlflowClient, experiment_id: str, search_id: str,
                  metric: str) -> list[Run]:
    """Completed trials of a search, best ``best_<metric>`` first (lowest for losses)."""
    trials = mlclient.search_runs([experiment_id], f"tags.`{names.TAG_PARENT}` = '{search_id}'",
                                  max_results=10_000)
    status = [t.data.tags.get(names.TAG_TRIAL_STATUS) for t in trials]
    done = [t for t, s in zip(trials, status, strict=True)
            if s == names.TrialStatus.COMPLETED.value]
    if not trials:
        raise TrackingError(f"search {search_id} has no trials to promote")
    if not done:
        counts = {s: status.count(s) for s in sorted(set(map(str, status)))}
        detail = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise TrackingError(f"search {search_id} has no completed trial to promote: all "
                            f"{len(trials)} trials were rejected or failed ({detail})")
    key = metric if metric.startswith("best_") else f"best_{metric}"
    scored = [t for t in done if key in t.data.metrics]
    if not scored:
        available = sorted({m for t in done for m in t.data.metrics if m.startswith("best_")})
        raise TrackingError(f"no completed trial of search {search_id} has metric {key!r}"
                            f"{did_you_mean(key, available)}; available: "
                            f"{', '.join(available) or 'none'}")
    sign = -1.0 if "loss" in key else 1.0
    return sorted(scored, key=lambda t: -sign * t.data.metrics[key])


def sealed_test_data(search: Run) -> Dataset:
    """Rebuild the exact data the search used; refuse when it no longer matches."""
    import mlflow

    from tunetrack.data import DataConfig, load_dataset

    run_id = search.info.run_id
    try:
        cfg = mlflow.artifacts.load_dict(f"runs:/{run_id}/{DATA_CONFIG_FILE}")
    except Exception as exc:  # noqa: BLE001 - missing or unreadable artifact
        raise TrackingError(f"search run {run_id} has no {DATA_CONFIG_FILE}, so its test split "
                            f"cannot be rebuilt; re-run the search with this tunetrack") from exc
    known = {f.name for f in fields(DataConfig)} - {"cache_dir"}  # the cache is local, not data
    cfg = {k: v for k, v in cfg.items() if k in known}
    if cfg.get("image_size") is not None:
        cfg["image_size"] = tuple(cfg["image_size"])
    dataset = load_dataset(DataConfig(**cfg))
    recorded = search.data.tags.get(names.TAG_DATA_FINGERPRINT)
    if recorded != dataset.fingerprint:
        raise DataError(f"the data changed since search {run_id}: its fingerprint was "
                        f"{recorded}, {cfg.get('source')!r} now gives {dataset.fingerprint}; "
                        f"the sealed test split cannot be rebuilt, so nothing is promoted")
    return dataset


__all__ = ["DATA_CONFIG_FILE", "experiment_id", "ranked_trials", "sealed_test_data",
           "search_run"]
