"""Which search a run belongs to, and how an interrupted one continues.

A search is identified by its *search key*: sha256 over the pipeline file, the space file and the
effective overrides (tuner, max_trials, epochs, seed, data). keras-tuner's project directory
(oracle state, one folder per trial) lives under ``.tunetrack/searches/<key>/`` so a re-run can
reload it (``overwrite=False``), and the parent MLflow run carries the key as
``tunetrack.search_key`` so a re-run finds the run to continue. MLflow is the record of what
finished: trials are rebuilt from the child runs, and a child left RUNNING by a dead process is
marked KILLED, so no run stays RUNNING forever.

Default: a plain re-run of an interrupted (RUNNING or KILLED) search resumes it and says so; a
plain re-run of a FINISHED or FAILED search starts a new one. ``--resume`` insists on resuming
(and refuses when the files changed), ``--new`` always starts a new search.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunetrack import names
from tunetrack.errors import PipelineError
from tunetrack.names import (
    TAG_OVERRIDES,
    TAG_OWNER,
    TAG_PIPELINE_SHA,
    TAG_RESUMED,
    TAG_SPACE_SHA,
    TAG_WORKER,
    RunStatus,
    TrialStatus,
)
from tunetrack.search.records import TrialRecord
from tunetrack.space.pipeline import Pipeline

STATE_DIR = Path(".tunetrack") / "searches"
MODES = ("auto", "resume", "new")


def _resumable(status: str) -> bool:
    return RunStatus(status).is_resumable()


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def effective_overrides(pipeline: Pipeline) -> dict[str, Any]:
    """The values a flag can change that decide which trials run."""
    out: dict[str, Any] = {"tuner": pipeline.tuner.kind, "max_trials": pipeline.tuner.max_trials,
                           "epochs": pipeline.training.epochs, "seed": pipeline.tuner.seed,
                           "data": pipeline.data.source}
    if pipeline.tuner.repeats > 1:  # likewise only when given (--repeats)
        out["repeats"] = pipeline.tuner.repeats
    if pipeline.pins:  # only when given, so the keys of searches without --set stay the same
        out["set"] = [f"{k}={v}" for k, v in pipeline.pins]
    return out


def snapshot(pipeline: Pipeline) -> dict[str, str]:
    """What a search was started from, stored as tags on its parent run."""
    return {TAG_PIPELINE_SHA: _sha(pipeline.path), TAG_SPACE_SHA: _sha(pipeline.space),
            TAG_OVERRIDES: json.dumps(effective_overrides(pipeline), sort_keys=True)}


def search_key(pipeline: Pipeline) -> str:
    digest = hashlib.sha256()
    digest.update(Path(pipeline.path).read_bytes())
    digest.update(b"\0")
    digest.update(Path(pipeline.space).read_bytes())
    digest.update(b"\0")
    digest.update(json.dumps(effective_overrides(pipeline), sort_keys=True).encode())
    return digest.hexdigest()


def state_dir(key: str) -> Path:
    return (Path.cwd() / STATE_DIR / key[:16]).resolve()


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(tag: str | None) -> bool:
    """Whether the process named by an owner tag is still running on this host."""
    if not tag or ":" not in tag:
        return False
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Plan:
    """What ``run_search`` does: start a new parent run, or continue ``parent``."""

    key: str
    directory: Path
    parent: Any = None  # mlflow Run to continue, or None for a new search
    superseded: Any = None  # an interrupted run a new search replaces
    notes: list[str] = field(default_factory=list)

    @property
    def resuming(self) -> bool:
        return self.parent is not None


def _changes(run: Any, pipeline: Pipeline) -> list[str]:
    tags, now = run.data.tags, snapshot(pipeline)
    out = []
    if tags.get(TAG_PIPELINE_SHA) != now[TAG_PIPELINE_SHA]:
        out.append(f"the pipeline file {pipeline.path} changed")
    if tags.get(TAG_SPACE_SHA) != now[TAG_SPACE_SHA]:
        out.append(f"the space file {pipeline.space} changed")
    before = json.loads(tags.get(TAG_OVERRIDES) or "{}")
    for key, value in effective_overrides(pipeline).items():
        if key in before and before[key] != value:
            out.append(f"{key} was {before[key]!r}, now {value!r}")
    return out or ["the search key differs"]


def plan_search(tracker: Any, pipeline: Pipeline, mode: str = "auto") -> Plan:
    """Decide between resuming and starting anew; refuse ``--resume`` of a changed search."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    key = search_key(pipeline)
    plan = Plan(key, state_dir(key))
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.`{names.TAG_ROLE}` = '{names.ROLE_SEARCH}' and "
        f"tags.`{names.TAG_PIPELINE}` = '{pipeline.path}'",
        order_by=["attributes.start_time DESC"], max_results=20)
    latest = runs[0] if runs else None
    same = next((r for r in runs if r.data.tags.get(names.TAG_SEARCH_KEY) == key), None)
    if mode == "new":
        if latest is not None and _resumable(latest.info.status):
            plan.superseded = latest
        return plan
    if latest is None or (mode == "auto" and not _resumable(latest.info.status)):
        if mode == "resume":
            state = f"its latest search (run {latest.info.run_id}) is {latest.info.status}" \
                if latest else "it has no search in this store"
            raise PipelineError(f"nothing to resume: {state}; run without --resume to start a "
                                "new search", file=pipeline.path)
        return plan
    if latest.data.tags.get(names.TAG_SEARCH_KEY) != key:
        changed = "; ".join(_changes(latest, pipeline))
        if mode == "resume":
            raise PipelineError(
                f"cannot resume search run {latest.info.run_id}: {changed} since it started; "
                "run with --new to start a new search", file=pipeline.path)
        plan.superseded = latest if _resumable(latest.info.status) else None
        plan.notes.append(f"not resuming interrupted search run {latest.info.run_id}: {changed}; "
                          "starting a new search")
        return plan
    if _owner_alive(latest.data.tags.get(TAG_OWNER)):
        raise PipelineError(f"search run {latest.info.run_id} is still running in process "
                            f"{latest.data.tags[TAG_OWNER]}; wait for it or stop it first",
                            file=pipeline.path)
    plan.parent = same or latest
    plan.notes.append(f"resuming search run {plan.parent.info.run_id} "
                      f"({plan.parent.info.status}); --new starts a new search instead")
    return plan


def children(client: Any, experiment_id: str, parent_id: str) -> list[Any]:
    return client.search_runs([experiment_id], f"tags.`{names.TAG_PARENT}` = '{parent_id}'",
                              max_results=5000)


def kill_stale(tracker: Any, parent_id: str, reason: str, *, worker: str | None = None) -> int:
    """Mark child runs left RUNNING by a dead process KILLED; returns how many."""
    killed = 0
    for run in children(tracker.client, tracker.experiment_id, parent_id):
        if run.info.status != RunStatus.RUNNING:
            continue
        if worker is not None and run.data.tags.get(TAG_WORKER) != worker:
            continue
        tracker.client.set_tag(run.info.run_id, names.TAG_TRIAL_STATUS, TrialStatus.KILLED.value)
        tracker.client.set_tag(run.info.run_id, names.TAG_REASON, reason)
        tracker.end_run(run.info.run_id, RunStatus.KILLED)
        killed += 1
        for repeat in children(tracker.client, tracker.experiment_id, run.info.run_id):
            if repeat.info.status == RunStatus.RUNNING:  # its seed repeat in flight
                tracker.end_run(repeat.info.run_id, RunStatus.KILLED)
    return killed


def abandon(tracker: Any, run: Any, new_parent: str) -> None:
    """An interrupted search a new one replaces: KILLED with a reason, its children too."""
    if _owner_alive(run.data.tags.get(TAG_OWNER)):
        return
    reason = f"not resumed; superseded by search run {new_parent}"
    kill_stale(tracker, run.info.run_id, f"process died; {reason}")
    tracker.client.set_tag(run.info.run_id, names.TAG_REASON, reason)
    if run.info.status == RunStatus.RUNNING:
        tracker.end_run(run.info.run_id, RunStatus.KILLED)


def reopen(tracker: Any, parent: Any) -> None:
    """The parent of a resumed search is RUNNING again; stale children become KILLED."""
    run_id = parent.info.run_id
    kill_stale(tracker, run_id, f"process died; resumed by {owner()} at "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    tracker.client.update_run(run_id, status=RunStatus.RUNNING.value)
    count = int(parent.data.tags.get(TAG_RESUMED, "0")) + 1
    tracker.client.set_tag(run_id, TAG_RESUMED, str(count))
    tracker.client.set_tag(run_id, TAG_OWNER, owner())
    tracker.parent_run_id = run_id


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def recorded_trials(tracker: Any, parent_id: str, objective: str) -> list[TrialRecord]:
    """The trials MLflow holds for a search, oldest first, one per trial id (KILLED skipped)."""
    records: dict[str, TrialRecord] = {}
    runs = sorted(children(tracker.client, tracker.experiment_id, parent_id),
                  key=lambda r: r.info.start_time)
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        try:
            status = TrialStatus(tags.get(names.TAG_TRIAL_STATUS, ""))
        except ValueError:
            continue
        if status is TrialStatus.KILLED or run.info.status == RunStatus.RUNNING:
            continue
        trial_id = tags[names.TAG_TRIAL_ID]
        candidate = {k: _value(v) for k, v in run.data.params.items() if not k.startswith("tuner/")}
        record = TrialRecord(trial_id, status, candidate, run_id=run.info.run_id,
                             reason=names.full_reason(tags),
                             seconds=names.read_metric(metrics, names.METRIC_TRAIN_SECONDS,
                                                       0.0) or 0.0)
        if status.is_trained():  # completed or pruned: scored
            record.objective = metrics.get(f"best_{objective}")
            record.params_total = int(names.read_metric(metrics, names.METRIC_PARAMS_TOTAL, 0) or 0)
            record.epochs = int(names.read_metric(metrics, names.METRIC_EPOCHS_TRAINED, 0) or 0)
            record.metrics = {k: v for k, v in metrics.items()
                              if k.startswith(("best_", "final_"))}
            record.metrics[objective] = record.objective
        records.setdefault(trial_id, record)
    return list(records.values())


def resume_command(pipeline_arg: str, flags: dict[str, Any]) -> str:
    """The exact command that continues a search started with these flags."""
    import shlex

    words = ["tunetrack", "search", pipeline_arg]
    for name, value in flags.items():
        if value is None or value is False or value == ():
            continue
        for item in value if isinstance(value, (tuple, list)) else (value,):
            words.append(f"--{name.replace('_', '-')}")
            if item is not True:
                words.append(str(item))
    return shlex.join([*words, "--resume"])
