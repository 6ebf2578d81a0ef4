"""The parent run of a search: opened new or reopened for a resume, and closed with its summary.

Used by :class:`~tunetrack.search.session.SearchSession`, so a search alone and the chief of a
parallel one leave the same record.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunetrack import names
from tunetrack.names import RunStatus, TrialStatus
from tunetrack.search import resume
from tunetrack.search.records import SearchResult, TrialRecord
from tunetrack.space.pipeline import Pipeline
from tunetrack.tracking.artifacts import to_jsonable


@dataclass
class OpenedSearch:
    tracker: Any
    log: Any  # RunLogger on the parent run
    plan: resume.Plan
    trials: list[TrialRecord] = field(default_factory=list)
    previous_seconds: float = 0.0

    @property
    def run_id(self) -> str:
        return self.log.run_id


def open_search(pipeline: Pipeline, space: Any, dataset: Any, *, mode: str = "auto",
                notify: Callable[[str], None] = print) -> OpenedSearch:
    """Start the parent run, or reopen the interrupted one this pipeline resumes."""
    from tunetrack.tracking.store import RunLogger, SearchTracker

    tracker = SearchTracker(pipeline.experiment)
    plan = resume.plan_search(tracker, pipeline, mode)
    for note in plan.notes:
        notify(note)
    if plan.resuming:
        parent = plan.parent
        resume.reopen(tracker, parent)
        log = RunLogger(tracker.client, parent.info.run_id)
        trials = resume.recorded_trials(tracker, parent.info.run_id, pipeline.objective)
        seconds = names.read_metric(parent.data.metrics, names.METRIC_SEARCH_SECONDS, 0.0)
        return OpenedSearch(tracker, log, plan, trials, float(seconds or 0.0))
    log = tracker.start_search(
        f"{pipeline.name}-{pipeline.tuner.kind}-{time.strftime('%Y%m%d-%H%M%S')}",
        {**search_tags(pipeline, space, dataset), names.TAG_SEARCH_KEY: plan.key,
         **resume.snapshot(pipeline), names.TAG_OWNER: resume.owner()})
    log.params(search_params(pipeline, space, dataset)).flush()
    # MLflow 3's UI opens an experiment of this kind on its runs, not on the GenAI overview.
    tracker.client.set_experiment_tag(tracker.experiment_id, names.TAG_EXPERIMENT_KIND,
                                      names.EXPERIMENT_KIND_ML)
    tracker.log_artifact(log.run_id, pipeline.path, "config")
    tracker.log_artifact(log.run_id, space.path, "config")
    tracker.client.log_dict(log.run_id, dataset.summary(), "data.json")
    tracker.client.log_dict(log.run_id, to_jsonable(pipeline.data), "data_config.json")
    if plan.superseded is not None:
        resume.abandon(tracker, plan.superseded, log.run_id)
    return OpenedSearch(tracker, log, plan)


def tuner_state(opened: OpenedSearch, notify: Callable[[str], None] = print) -> bool:
    """Whether keras-tuner's saved state belongs to this search (reload it) or must be reset."""
    marker = opened.plan.directory / "search.json"
    if not opened.plan.resuming:
        return False
    try:
        owner = json.loads(marker.read_text()).get("parent_run_id")
    except (OSError, ValueError):
        owner = None
    if owner == opened.run_id and (opened.plan.directory / "search").is_dir():
        return True
    notify(f"keras-tuner state for this search not found under {opened.plan.directory}; the "
           "oracle starts over and trials already recorded in MLflow are not trained again")
    return False


def mark_tuner_state(opened: OpenedSearch) -> None:
    opened.plan.directory.mkdir(parents=True, exist_ok=True)
    (opened.plan.directory / "search.json").write_text(json.dumps(
        {"parent_run_id": opened.run_id, "experiment": opened.tracker.experiment_name,
         "search_key": opened.plan.key}))


def search_tags(pipeline: Pipeline, space: Any, dataset: Any) -> dict[str, Any]:
    from tunetrack.tracking.versioning import git_commit, package_versions

    return {names.TAG_FAMILY: space.family, names.TAG_TUNER: pipeline.tuner.kind,
            names.TAG_SEED: pipeline.tuner.seed, names.TAG_PIPELINE: pipeline.path,
            names.TAG_SPACE: space.path, names.TAG_OBJECTIVE: pipeline.objective,
            names.TAG_DIRECTION: pipeline.direction,
            names.TAG_DATA_FINGERPRINT: dataset.fingerprint,
            names.TAG_CLASSES: list(dataset.class_names),
            names.TAG_GIT_COMMIT: git_commit(), names.TAG_VERSIONS: package_versions()}


def search_params(pipeline: Pipeline, space: Any, dataset: Any) -> dict[str, Any]:
    d, t = pipeline.data, pipeline.tuner
    sizes = dataset.summary().get("split_sizes", {})
    return {"pipeline": pipeline.name, "family": space.family, "tuner": t.kind,
            "max_trials": t.max_trials, "epochs": pipeline.training.epochs,
            "patience": pipeline.training.patience, "seed": t.seed,
            "training.mixed_precision": pipeline.training.mixed_precision,
            "training.jit_compile": ("auto" if pipeline.training.jit_compile is None
                                     else pipeline.training.jit_compile),
            "data.cache": d.cache,
            "objective": pipeline.objective, "direction": pipeline.direction,
            "data.source": d.source,
            "data.image_shape": list(dataset.image_shape), "data.split_seed": d.seed,
            "data.validation_split": d.validation_split, "data.test_split": d.test_split,
            "data.num_classes": len(dataset.class_names),
            **({"pinned": " ".join(f"{k}={v}" for k, v in pipeline.pins)} if pipeline.pins
               else {}),
            **{f"data.{k}_size": v for k, v in sizes.items()}}


def search_description(result: SearchResult) -> str:
    """The search run's description (markdown): its summary and its ten best trials."""
    from tunetrack.tracking import compare

    lines = [line for line in result.summary_lines() if not line.startswith("search run ")]
    text = "\n".join(f"    {line}" for line in lines)
    if result.trials:
        board = compare.leaderboard(result.trials, result.objective, result.direction)
        shown = [c.format(objective=result.objective) for c in compare.LEADERBOARD_HEAD]
        text += ("\n\nBest trials (all of them: `leaderboard.md`, `leaderboard.csv`):\n\n"
                 + compare.leaderboard_markdown(board.head(10)[shown]))
    return text


def finish_search(tracker: Any, log: Any, result: SearchResult, failure: str | None, *,
                  before_end: Callable[[], None] | None = None) -> None:
    """Summary metrics, best-trial tags, leaderboard and plots; ``before_end()`` (the trials'
    uploads draining, which run meanwhile in their own process); then the parent's final
    status."""
    best = result.best
    log.metrics({names.METRIC_TRIALS_COMPLETED: result.count(TrialStatus.COMPLETED),
                 names.METRIC_TRIALS_REJECTED: result.count(TrialStatus.REJECTED),
                 names.METRIC_TRIALS_FAILED: result.count(TrialStatus.FAILED),
                 names.METRIC_TRIALS_PRUNED: result.count(TrialStatus.PRUNED),
                 names.METRIC_SEARCH_SECONDS: result.elapsed})
    if best is not None:
        log.metrics({names.search_best(result.pipeline.objective): best.objective})
        if "best_val_accuracy" in best.metrics or result.pipeline.objective == "val_accuracy":
            log.metric(names.search_best("val_accuracy"),
                       best.metrics.get("best_val_accuracy", best.objective))
        log.tags({names.TAG_BEST_TRIAL: best.trial_id, names.TAG_BEST_RUN: best.run_id})
    log.tags({names.TAG_NOTE: search_description(result)})
    if failure:
        log.tags({names.TAG_REASON: failure})
    if result.trials:
        from tunetrack.tracking import artifacts

        try:
            artifacts.log_search(tracker, log.run_id, result)
        except Exception as exc:  # a missing picture must not lose the search's record
            warnings.warn(f"could not write the search's leaderboard/plots: {exc}", stacklevel=2)
        try:  # the values that failed, were rejected or pruned; the seed repeats' table
            from tunetrack.tracking import compare, failuremap

            failuremap.log_failure_map(tracker.client, log.run_id, result.trials,
                                       result.searched)
            if result.pipeline.tuner.runs_per_candidate > 1:
                compare.log_repeats_table(tracker.client, log.run_id)
        except Exception as exc:
            warnings.warn(f"could not write the failure map or repeats table: {exc}",
                          stacklevel=2)
    if result.stop_reason:
        log.tags({names.TAG_STOP_REASON: result.stop_reason})
    if before_end is not None:
        before_end()
    log.flush()
    tracker.end_run(log.run_id, RunStatus(result.status))
