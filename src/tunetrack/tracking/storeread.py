"""The runs ``tunetrack compare`` reads, from MLflow's client or straight from a local SQLite store.

``import mlflow`` alone costs ~2.8 s here (it imports its GenAI, gateway and pandas-dataset
modules eagerly), more than the whole budget of a command that prints one table. So for the
embedded store, a ``sqlite:`` URI whose schema revision is one this MLflow pin writes
(:data:`KNOWN_SCHEMAS`), compare reads MLflow's own tables (``experiments``, ``runs``, ``tags``,
``params``, ``latest_metrics``) with the standard library's ``sqlite3``, read-only. Everything
else goes through ``MlflowClient``: another store, another schema revision, and ``--where``
(MLflow's filter language is MLflow's to parse). Both readers answer the same four questions
with the same objects, and a test checks that the two give the same table.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Experiment as MlflowExperiment
    from mlflow.entities import Run as MlflowRun

# alembic revisions of MLflow's SQL schema whose run tables this module reads (mlflow 3.17.x).
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
PAGE_SIZE = 1000  # MLflow's largest page for search_runs


class RunNotFound(LookupError):
    """No run with that id in the store."""


class QueryError(ValueError):
    """The store refused a query (a bad ``where`` filter, most often); the message is MLflow's."""


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """What compare reads of an MLflow run, shaped like ``mlflow.entities.Run``."""

    info: RunInfo
    data: RunData


# What either reader hands back: compare reads only the attributes the two share.
AnyRun: TypeAlias = "MlflowRun | Run"
AnyExperiment: TypeAlias = "MlflowExperiment | Experiment"


class MlflowRuns:
    """The reader over ``MlflowClient`` (any store MLflow supports; ``where`` allowed)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.tracking_uri = getattr(getattr(client, "_tracking_client", None), "tracking_uri",
                                    "the MLflow store")

    def get_experiment_by_name(self, name: str) -> MlflowExperiment | None:
        return self.client.get_experiment_by_name(name)

    def experiments(self) -> list[MlflowExperiment]:
        """Every active experiment, across pages."""
        found: list[MlflowExperiment] = []
        token = None
        while True:
            page = self.client.search_experiments(max_results=PAGE_SIZE, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def get_run(self, run_id: str) -> MlflowRun:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise RunNotFound(run_id) from None

    def tagged(self, experiment_ids: Sequence[str], tag: str, value: str, *,
               order: str | None = None, max_results: int | None = None,
               where: str | None = None) -> list[MlflowRun]:
        """Active runs with ``tag = value``; ``order`` is MLflow's ``order_by`` syntax."""
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException

        if not experiment_ids:
            return []
        query = f"tags.`{tag}` = '{value}'"
        if where and where.strip():
            query += f" and {where.strip()}"
        runs: list[MlflowRun] = []
        token = None
        while max_results is None or len(runs) < max_results:
            size = PAGE_SIZE if max_results is None else min(PAGE_SIZE, max_results - len(runs))
            try:
                page = self.client.search_runs(
                    list(experiment_ids), query, run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=size, order_by=[order] if order else None, page_token=token)
            except MlflowException as exc:
                raise QueryError(exc.message) from None
            runs.extend(page)
            token = page.token
            if not token:
                break
        return runs


class SqliteRuns:
    """The same reader over a local MLflow SQLite file, without importing MLflow."""

    def __init__(self, connection: sqlite3.Connection, tracking_uri: str) -> None:
        self.db = connection
        self.tracking_uri = tracking_uri

    @classmethod
    def open(cls, tracking_uri: str) -> SqliteRuns | None:
        """A reader if ``tracking_uri`` is an existing SQLite store of a known schema, else None."""
        from tunetrack.tracking.store import sqlite_path

        path = sqlite_path(tracking_uri)
        if path is None or not path.is_file():
            return None  # MLflow creates and migrates a new store; leave that to it
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            revisions = {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
        except sqlite3.Error:
            return None
        if not revisions or not revisions <= KNOWN_SCHEMAS:
            db.close()
            return None
        return cls(db, tracking_uri)

    def _experiment(self, row: tuple) -> Experiment:
        return Experiment(str(row[0]), row[1], row[2])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        row = self.db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments "
            "WHERE name = ? AND workspace = 'default'", (name,)).fetchone()
        return self._experiment(row) if row else None

    def experiments(self) -> list[Experiment]:
        rows = self.db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments "
            "WHERE lifecycle_stage = 'active' AND workspace = 'default' ORDER BY experiment_id")
        return [self._experiment(r) for r in rows]

    def get_run(self, run_id: str) -> Run:
        runs = self._runs("r.run_uuid = ?", [run_id])
        if not runs:
            raise RunNotFound(run_id)
        return runs[0]

    def tagged(self, experiment_ids: Sequence[str], tag: str, value: str, *,
               order: str | None = None, max_results: int | None = None,
               where: str | None = None) -> list[Run]:
        if where and where.strip():
            raise NotImplementedError("MLflow filter strings need MlflowClient")
        if not experiment_ids:
            return []
        marks = ",".join("?" * len(experiment_ids))
        condition = (f"r.experiment_id IN ({marks}) AND r.lifecycle_stage = 'active' AND "
                     "EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid "
                     "AND t.key = ? AND t.value = ?)")
        args: list[Any] = [int(i) for i in experiment_ids] + [tag, value]
        return self._runs(condition, args, order, max_results)

    @staticmethod
    def _order(order: str | None) -> tuple[str, list[Any], str]:
        """(join, its arguments, ORDER BY) for the two orders compare asks for, as MLflow sorts
        them: start time; or a metric, then NaN, then the runs without it. Ties fall newest
        first."""
        if order is None:
            return "", [], "r.start_time DESC, r.run_uuid"
        column, _, direction = order.rpartition(" ")
        direction = direction.upper()
        if direction not in ("ASC", "DESC"):
            raise NotImplementedError(f"order {order!r}")
        if column == "attributes.start_time":
            return "", [], f"r.start_time {direction}, r.run_uuid"
        if column.startswith("metrics."):
            return ("LEFT JOIN latest_metrics m ON m.run_uuid = r.run_uuid AND m.key = ?",
                    [column[len("metrics."):].strip("`")],
                    "CASE WHEN m.is_nan = 1 THEN 1 WHEN m.value IS NULL THEN 2 ELSE 0 END, "
                    f"m.value {direction}, "
                    "r.start_time DESC, r.run_uuid")
        raise NotImplementedError(f"order {order!r}")

    def _runs(self, condition: str, args: list[Any], order: str | None = None,
              max_results: int | None = None) -> list[Run]:
        join, join_args, order_by = self._order(order)
        limit = "" if max_results is None else f" LIMIT {int(max_results)}"
        rows = self.db.execute(
            "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time FROM runs r "
            f"{join} WHERE {condition} ORDER BY {order_by}{limit}", join_args + args).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        tags = self._by_run("SELECT run_uuid, key, value FROM tags", ids)
        params = self._by_run("SELECT run_uuid, key, value FROM params", ids)
        metrics = self._by_run("SELECT run_uuid, key, CASE WHEN is_nan = 1 THEN NULL "
                               "ELSE value END FROM latest_metrics", ids)
        return [Run(RunInfo(r[0], r[1] or "", str(r[2]), r[3], r[4]),
                    RunData(tags.get(r[0], {}), params.get(r[0], {}),
                            {k: math.nan if v is None else float(v)
                             for k, v in metrics.get(r[0], {}).items()}))
                for r in rows]

    def _by_run(self, select: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 900):  # SQLite's bound-variable limit
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in self.db.execute(
                    f"{select} WHERE run_uuid IN ({marks})", chunk):
                out.setdefault(run_id, {})[key] = value
        return out


def reader(where: str | None = None) -> MlflowRuns | SqliteRuns:
    """The fastest reader that can answer for the current tracking URI (and ``where``)."""
    from tunetrack.tracking.store import tracking_uri

    if not (where and where.strip()):
        fast = SqliteRuns.open(tracking_uri())
        if fast is not None:
            return fast
    from tunetrack.tracking.store import client

    return MlflowRuns(client())
