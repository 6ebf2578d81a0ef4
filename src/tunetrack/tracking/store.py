"""MLflow tracking: the embedded store, one parent run per search, one child run per trial.

tunetrack logs through ``MlflowClient`` in batches (one ``log_batch`` per trial for params,
tags and every epoch's metrics) instead of autologging, which costs 1.3-1.8x a bare search.
The embedded store is SQLite under ``mlruns/`` with artifacts under ``mlruns/artifacts``;
``MLFLOW_TRACKING_URI`` in the environment points tunetrack at any other store.

A SQLite store is checked before MLflow touches it (a folder or database the user cannot write
is one line naming the path and the user, at once), and created under a file lock beside the
database, so two searches started together on a fresh store do not both run MLflow's schema
migrations (one would fail with ``duplicate column name``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

from tunetrack import names
from tunetrack.errors import TrackingError, causes
from tunetrack.tracking.retry import LOCKED_RETRIES, is_locked, retry_locked  # noqa: F401
from tunetrack.tracking.writer import WRITER, Writer

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
STORE_DIR = "mlruns"
DB_NAME = "mlflow.db"


def user_name() -> str:
    """Who this process writes as, for messages about permissions."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return str(getattr(os, "geteuid", lambda: "?")())


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(f"cannot create the store folder {folder} as user {user_name()}: "
                            f"{exc.strerror or exc}; run where you can write or set "
                            f"MLFLOW_TRACKING_URI") from None


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under ``./mlruns``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    store = Path.cwd() / STORE_DIR
    _make_folder(store)
    return f"sqlite:///{store / DB_NAME}"


def check_writable(db: Path) -> None:
    """A :class:`TrackingError` naming ``db`` and the user unless SQLite can write there: the
    folder must exist (it is created) and be writable (SQLite keeps its journal beside the
    database), and an existing database must be readable and writable."""
    _make_folder(db.parent)
    user = user_name()
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise TrackingError(f"the store {db} is read-only for user {user}; make it writable "
                            f"or set MLFLOW_TRACKING_URI to another store")
    if not os.access(db.parent, os.W_OK | os.X_OK):
        raise TrackingError(f"the store folder {db.parent} is not writable by user {user} "
                            f"(SQLite writes its journal beside {db.name}); make it writable "
                            f"or set MLFLOW_TRACKING_URI to another store")


@contextlib.contextmanager
def store_lock(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``DB.lock`` beside a SQLite store (nothing for other stores):
    creating the schema and the first experiment happen one process at a time."""
    if db is None:
        yield
        return
    import fcntl

    with open(db.parent / f"{db.name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_READY: set[str] = set()  # SQLite URIs whose schema this process has seen created
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN = 3, 8, 14


def permission_problem(error: BaseException) -> str | None:
    """SQLite's "read-only", "cannot open" or "permission" error behind ``error``, as text."""
    for cause in causes(error):
        if isinstance(cause, sqlite3.OperationalError):
            code = getattr(cause, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in (_SQLITE_PERM, _SQLITE_READONLY,
                                                    _SQLITE_CANTOPEN):
                return str(cause)
    return None


def _as_tracking_error(error: BaseException) -> TrackingError | None:
    why = permission_problem(error)
    if why is None:
        return None
    uri = tracking_uri()
    where = sqlite_path(uri) or uri
    return TrackingError(f"cannot write the store {where} as user {user_name()}: {why}")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (query string dropped), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///"):].split("?", 1)[0]))


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a SQLite file, else the server's choice."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db = sqlite_path(uri) or Path(unquote(parsed.path))
        return (db.parent / "artifacts").resolve().as_uri()
    if parsed.scheme in ("", "file"):
        return None
    return None


def client() -> MlflowClient:
    """An ``MlflowClient`` on :func:`tracking_uri`; quiets MLflow's own start-up logging."""
    import logging

    for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    db = sqlite_path(uri)
    if db is None or uri in _READY:
        return MlflowClient(uri)
    check_writable(db)
    with store_lock(db):  # the first store in this process creates or checks MLflow's schema
        mlclient = MlflowClient(uri)
        try:
            mlclient.search_experiments(max_results=1)
        except Exception as exc:
            mapped = _as_tracking_error(exc)
            if mapped is None:
                raise
            raise mapped from None
    _READY.add(uri)
    return mlclient


def get_or_create_experiment(mlclient: MlflowClient, name: str) -> str:
    """The experiment's id, created if needed; two searches creating it at once get one."""
    if not name.strip():
        raise TrackingError(f"an experiment needs a name, got {name!r}")
    uri = tracking_uri()
    with store_lock(sqlite_path(uri)):
        experiment = write(mlclient.get_experiment_by_name, name)
        if experiment is None:
            from mlflow.exceptions import MlflowException

            try:
                return write(mlclient.create_experiment, name,
                             artifact_location=artifact_root(uri))
            except MlflowException as exc:  # a tracking server: another process won the race
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = write(mlclient.get_experiment_by_name, name)
                if experiment is None:
                    raise
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(f"experiment {name!r} is deleted in {uri}; restore it "
                            "with 'mlflow experiments restore' or choose another --experiment")
    return str(experiment.experiment_id)


def write(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`retry_locked`, with a read-only store (or one SQLite cannot open) turned into a
    one-line :class:`TrackingError` naming the path and the user."""
    try:
        return retry_locked(call, *args, **kwargs)
    except Exception as exc:
        mapped = _as_tracking_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def terminate(mlclient: MlflowClient, run_id: str, status: str) -> None:
    """End a run with one request. ``MlflowClient.set_terminated`` also reads the run back from
    a tracking server to print a "View run" link (a second request per run, and a line per
    trial on a worker's console); the store's own ``update_run_info`` is what it then calls."""
    from mlflow.entities import RunStatus as MlflowStatus

    store = getattr(getattr(mlclient, "_tracking_client", None), "store", None)
    if store is None or not hasattr(store, "update_run_info"):
        retry_locked(mlclient.set_terminated, run_id, status=str(status))
        return
    retry_locked(store.update_run_info, run_id, run_status=MlflowStatus.from_string(str(status)),
                 end_time=int(time.time() * 1000), run_name=None)


def _stringify(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


class RunLogger:
    """Collects params, tags and metrics for one run and writes them in as few calls as possible:
    at once, or queued on ``writer`` (a trial run's: see :mod:`tunetrack.tracking.writer`)."""

    def __init__(self, mlclient: MlflowClient, run_id: str, writer: Writer | None = None) -> None:
        self.client, self.run_id, self.writer = mlclient, run_id, writer
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._metrics: list[tuple[str, float, int]] = []

    def params(self, values: Mapping[str, Any]) -> RunLogger:
        self._params.update({k: _stringify(v) for k, v in values.items()})
        return self

    def tags(self, values: Mapping[str, Any]) -> RunLogger:
        self._tags.update({k: _stringify(v) for k, v in values.items() if v is not None})
        return self

    def metric(self, key: str, value: float, step: int = 0) -> RunLogger:
        self._metrics.append((key, float(value), int(step)))
        return self

    def metrics(self, values: Mapping[str, float], step: int = 0) -> RunLogger:
        for key, value in values.items():
            if value is not None:
                self.metric(key, value, step)
        return self

    def series(self, key: str, values: Iterable[float], steps: Iterable[int]) -> RunLogger:
        for step, value in zip(steps, values, strict=False):
            self.metric(key, value, step)
        return self

    def flush(self) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if not (self._params or self._tags or self._metrics):
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, s) for k, v, s in self._metrics]
        if self.writer is not None:  # a trial run: written in the background, before it ends
            self.writer.submit(self.client, self.run_id, metrics, params=self._params,
                               tags=self._tags, what=f"params, tags or scores of run "
                                                     f"{self.run_id}")
        else:
            retry_locked(
                self.client.log_batch, self.run_id, metrics=metrics,
                params=[Param(k, v) for k, v in self._params.items()],
                tags=[RunTag(k, v) for k, v in self._tags.items()])
        self._params, self._tags, self._metrics = {}, {}, []


class SearchTracker:
    """The MLflow side of one search: its parent run and a child run per trial."""

    def __init__(self, experiment: str) -> None:
        self.client = client()
        self.experiment_name = experiment
        self.experiment_id = get_or_create_experiment(self.client, experiment)
        self.parent_run_id: str | None = None
        self.writer = WRITER
        self.artifact_uris: dict[str, str] = {}  # a trial run's, as create_run answered

    def start_search(self, run_name: str, tags: Mapping[str, Any]) -> RunLogger:
        run = write(
            self.client.create_run, self.experiment_id, run_name=run_name,
            tags={names.TAG_ROLE: names.ROLE_SEARCH,
                  **{k: _stringify(v) for k, v in tags.items() if v is not None}})
        self.parent_run_id = run.info.run_id
        return RunLogger(self.client, self.parent_run_id)

    def start_trial(self, trial_id: str, run_name: str, tags: Mapping[str, Any]) -> RunLogger:
        run = retry_locked(
            self.client.create_run, self.experiment_id, run_name=run_name,
            tags={names.TAG_PARENT: self.parent_run_id, names.TAG_ROLE: names.ROLE_TRIAL,
                  names.TAG_TRIAL_ID: trial_id,
                  **{k: _stringify(v) for k, v in tags.items() if v is not None}})
        self.artifact_uris[run.info.run_id] = run.info.artifact_uri
        return RunLogger(self.client, run.info.run_id, self.writer)

    def end_run(self, run_id: str, status: str = names.RunStatus.FINISHED) -> None:
        """What the writer holds is written first; then the run ends (one request)."""
        self.writer.flush()
        self.artifact_uris.pop(run_id, None)
        terminate(self.client, run_id, status)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)
