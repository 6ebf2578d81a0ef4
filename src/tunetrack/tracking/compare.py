"""``tunetrack compare``: the trials of one search as a table, straight from the MLflow store.

Only the search's child runs are fetched (``--top K``: only the K best, ordered in the store;
``--where``: pushed into MLflow's ``search_runs`` filter), each page whole, with no call per
run, so an experiment with thousands of runs stays fast. Runs come through :mod:`.storeread`
(SQLite read without MLflow); pandas is imported inside the functions (fast ``--help``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tunetrack import names
from tunetrack.errors import TrackingError, allowed_list, did_you_mean
from tunetrack.tracking import tables

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from tunetrack.tracking.storeread import AnyRun as Run
    from tunetrack.tracking.storeread import MlflowRuns, SqliteRuns

FORMATS = ("table", "csv", "json", "markdown")
FIXED_HEAD = ("trial_id", "status", "{objective}", "params_total", "epochs", "train_seconds")
# Seed repeats add ±, the interval and the count; every trial logs its validation macro-F1.
FIXED_TAIL = ("run_id", "reason", "±", "ci95_low", "ci95_high", "repeats", "val_macro_f1")
# leaderboard.csv/.md: what a reader looks for first, the objective's verdict beside it.
LEADERBOARD_HEAD = ("trial_id", "{objective}", "status", "reason", "params_total", "epochs",
                    "train_seconds")
LEADERBOARD_DIGITS = 4


# -- finding the search ----------------------------------------------------------------------
def _reader(client: MlflowClient | MlflowRuns | SqliteRuns) -> MlflowRuns | SqliteRuns:
    """``client`` as a run reader: an ``MlflowClient`` is wrapped, a reader is kept."""
    from tunetrack.tracking.storeread import MlflowRuns, SqliteRuns

    return client if isinstance(client, (MlflowRuns, SqliteRuns)) else MlflowRuns(client)


def _is_search(run: Run) -> bool:
    return run.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH


def _recent_searches(store: MlflowRuns | SqliteRuns, experiment_ids: list[str],
                     n: int) -> Sequence[Run]:
    return store.tagged(experiment_ids, names.TAG_ROLE, names.ROLE_SEARCH,
                        order="attributes.start_time DESC", max_results=n)


def _describe(runs: Iterable[Run]) -> str:
    return ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in runs)


def find_search(client: MlflowClient | MlflowRuns | SqliteRuns, experiment: str | None,
                search_run_id: str | None) -> Run:
    """The search's parent run: ``search_run_id`` if given, else the experiment's newest search.

    With neither, the newest search of any experiment, so ``tunetrack compare`` right after
    ``tunetrack search`` shows that search.
    """
    from tunetrack.tracking.storeread import RunNotFound

    store = _reader(client)
    exp = None
    if experiment is not None:
        exp = store.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage == "deleted":
            known = sorted((e.name for e in store.experiments()), key=str.lower)
            raise TrackingError(
                f"no experiment {experiment!r} in {store.tracking_uri}"
                f"{did_you_mean(experiment, known)}; experiments: {allowed_list(known) or 'none'}")
    if search_run_id is not None:
        try:
            run = store.get_run(search_run_id)
        except RunNotFound:
            ids = [exp.experiment_id] if exp else [e.experiment_id for e in store.experiments()]
            recent = _recent_searches(store, ids, 5)
            hint = f"; recent search runs: {_describe(recent)}" if recent else ""
            raise TrackingError(f"no run {search_run_id!r} in {store.tracking_uri}{hint}") from None
        if not _is_search(run):
            role = run.data.tags.get(names.TAG_ROLE)
            parent = run.data.tags.get(names.TAG_PARENT)
            if role == names.ROLE_TRIAL and parent:
                raise TrackingError(f"run {search_run_id!r} is a trial of search {parent!r}, "
                                    f"not a search; pass --search {parent}")
            raise TrackingError(f"run {search_run_id!r} is not a tunetrack search run "
                                f"(tag {names.TAG_ROLE}={role!r}, expected {names.ROLE_SEARCH!r})")
        if exp is not None and run.info.experiment_id != exp.experiment_id:
            raise TrackingError(f"search run {search_run_id!r} is not in experiment "
                                f"{experiment!r}; drop --experiment or pass its experiment")
        return run
    ids = [exp.experiment_id] if exp else [e.experiment_id for e in store.experiments()]
    recent = _recent_searches(store, ids, 1)
    if not recent:
        where = f"experiment {experiment!r}" if exp else store.tracking_uri
        raise TrackingError(f"no tunetrack search runs in {where}; "
                            "run 'tunetrack search PIPELINE' first")
    return recent[0]


def search_objective(search_run: Run) -> tuple[str, str]:
    """(objective, direction) of a search; direction is inferred from the name if not logged."""
    params, tags = search_run.data.params, search_run.data.tags
    objective = params.get("objective") or tags.get(names.TAG_OBJECTIVE) or "val_accuracy"
    direction = params.get("direction") or tags.get("tunetrack.direction")
    if direction not in ("min", "max"):
        direction = "min" if "loss" in objective else "max"
    return objective, direction


# -- loading trials --------------------------------------------------------------------------
def _natural(name: str) -> list[Any]:
    """``blocks.2.filters`` before ``blocks.10.filters``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _numeric(values: Sequence[Any], pd: Any) -> Any:
    """A params column as numbers when every present value parses, else unchanged."""
    present = [v for v in values if v is not None]
    if not present:
        return values
    try:
        ints = [int(v) for v in present]
    except ValueError:
        ints = None
    if ints is not None:
        return pd.array([None if v is None else int(v) for v in values], dtype="Int64")
    try:
        return [None if v is None else float(v) for v in values]
    except ValueError:
        return values


def _status(run: Run) -> str:
    status = run.data.tags.get(names.TAG_TRIAL_STATUS)
    if status:
        return status
    return {"FINISHED": "completed"}.get(run.info.status, run.info.status.lower())


def load_trials(client: MlflowClient | MlflowRuns | SqliteRuns, search_run: Run, *,
                where: str | None = None, order_by: list[str] | None = None,
                max_results: int | None = None) -> pd.DataFrame:
    """One row per trial of ``search_run``; ``where`` (MLflow syntax) is ANDed in the store."""
    import pandas as pd

    from tunetrack.tracking.storeread import QueryError

    objective, _ = search_objective(search_run)
    try:
        runs = _reader(client).tagged(
            [search_run.info.experiment_id], names.TAG_PARENT, search_run.info.run_id,
            order=order_by[0] if order_by else None, max_results=max_results, where=where)
    except QueryError as exc:
        raise TrackingError(
            f"cannot filter trials with --where {where!r}: {exc}; use MLflow's "
            "syntax, e.g. \"params.optimizer = 'adam' and metrics.best_val_accuracy > 0.9\" "
            "(quote names with dots: params.`blocks.1.filters`)" if where else
            f"cannot list the trials of search {search_run.info.run_id}: {exc}"
        ) from None
    # Trial order, so ties in any later sort fall in the order tried (``order_by`` only
    # chooses which runs come back when ``max_results`` cuts the list).
    runs.sort(key=lambda r: _natural(r.data.tags.get(names.TAG_TRIAL_ID, "")))

    hp_names = sorted({k for r in runs for k in r.data.params}, key=_natural)
    best_key = f"best_{objective}"
    columns: dict[str, Any] = {
        "trial_id": [r.data.tags.get(names.TAG_TRIAL_ID, r.info.run_name) for r in runs],
        "status": [_status(r) for r in runs],
        objective: [r.data.metrics.get(best_key, r.data.metrics.get(objective)) for r in runs],
        **{column: [names.read_metric(r.data.metrics, metric) for r in runs] for column, metric
           in (("params_total", names.METRIC_PARAMS_TOTAL), ("epochs", names.METRIC_EPOCHS_TRAINED),
               ("train_seconds", names.METRIC_TRAIN_SECONDS))},
    }
    macro_f1 = [r.data.metrics.get("best_val_macro_f1") for r in runs]
    if objective != "val_macro_f1" and any(v is not None for v in macro_f1):
        columns["val_macro_f1"] = macro_f1  # --sort -val_macro_f1 whatever the objective
    for key in hp_names:
        if key not in columns:
            columns[key] = _numeric([r.data.params.get(key) for r in runs], pd)
    columns["run_id"] = [r.info.run_id for r in runs]
    columns["reason"] = [names.full_reason(dict(r.data.tags)) for r in runs]
    df = pd.DataFrame(columns)
    for key in ("params_total", "epochs"):
        df[key] = pd.array([None if v is None or math.isnan(v) else int(v) for v in df[key]],
                           dtype="Int64")
    for key in (objective, "train_seconds"):
        df[key] = df[key].astype("float64")
    from tunetrack.tracking.significance import add_columns  # seed repeats: ± and interval
    return add_columns(df, runs, objective)


# -- the table -------------------------------------------------------------------------------
def fixed_columns(objective: str) -> tuple[str, ...]:
    return tuple(c.format(objective=objective) for c in FIXED_HEAD) + FIXED_TAIL


def hyperparameter_columns(df: pd.DataFrame, objective: str) -> list[str]:
    fixed = set(fixed_columns(objective))
    return [c for c in df.columns if c not in fixed]


def _sort(df: pd.DataFrame, sort: str | None, objective: str, direction: str) -> pd.DataFrame:
    if sort is None:
        unfinished = (df["status"] != names.TrialStatus.COMPLETED.value).astype(int)
        return (df.assign(_unfinished=unfinished)
                .sort_values(["_unfinished", objective], ascending=[True, direction == "min"],
                             na_position="last", kind="stable")
                .drop(columns="_unfinished"))
    descending = sort.startswith("-")
    column = sort.lstrip("+-")
    if column not in df.columns:
        column = re.sub(r"^(params|metrics|tags)\.`?(.*?)`?$", r"\2", column)
        column = objective if column == f"best_{objective}" else column
    if column not in df.columns:
        raise TrackingError(f"cannot sort by {sort!r}: no such column"
                            f"{did_you_mean(sort.lstrip('+-'), df.columns)}; columns: "
                            f"{allowed_list(df.columns)} (prefix '-' for descending)")
    return df.sort_values(column, ascending=not descending, na_position="last", kind="stable")


def compare_table(df: pd.DataFrame, *, objective: str, direction: str = "max",
                  top: int | None = None, sort: str | None = None, fmt: str = "table",
                  varying_only: bool = True) -> str:
    """Sort, cut to ``top`` rows, drop hyperparameters that do not vary, and render as ``fmt``.

    Varying is judged on the rows shown (an inactive value is not a difference), so
    ``--top 5`` shows what separates those five; a single row keeps every hyperparameter,
    as there is nothing to compare it with.
    """
    if fmt not in FORMATS:
        raise TrackingError(f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}; "
                            f"formats: {allowed_list(FORMATS)}")
    if top is not None and top < 1:
        raise TrackingError(f"--top must be at least 1, but got {top}")
    shown = _sort(df, sort, objective, direction)
    if top is not None:
        shown = shown.head(top)
    if varying_only and len(shown) > 1:
        constant = [c for c in hyperparameter_columns(shown, objective)
                    if shown[c].astype(object).nunique(dropna=True) <= 1]
        shown = shown.drop(columns=constant)
    shown = shown.reset_index(drop=True)
    if fmt == "csv":
        return shown.to_csv(index=False)
    if fmt == "json":
        return json.dumps(tables.records(shown), indent=2, default=str)
    if fmt == "markdown":
        return tables.markdown(shown)
    return tables.plain_text(shown)


def compare(experiment: str | None = None, search: str | None = None, top: int | None = None,
            sort: str | None = None, where: str | None = None, fmt: str = "table") -> str:
    """The ``tunetrack compare`` command: the chosen search's trials rendered as ``fmt``."""
    from tunetrack.tracking.storeread import reader

    if fmt not in FORMATS:
        raise TrackingError(f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}; "
                            f"formats: {allowed_list(FORMATS)}")
    store = reader(where)  # SQLite read directly unless MLflow must parse ``where``
    search_run = find_search(store, experiment, search)
    objective, direction = search_objective(search_run)
    if top and not sort:
        # The default order is the store's too: ask it for the K best only (a search of 1,000
        # trials then transfers 20 runs, not 1,000). Trials without the metric sort last.
        order = f"metrics.`best_{objective}` {'DESC' if direction == 'max' else 'ASC'}"
        df = load_trials(store, search_run, where=where, order_by=[order], max_results=top)
    else:
        df = load_trials(store, search_run, where=where)
    text = compare_table(df, objective=objective, direction=direction, top=top, sort=sort,
                         fmt=fmt)
    if fmt != "table":
        return text
    shown = min(len(df), top) if top else len(df)
    which = (f"the best {shown}" if top and not sort else
             f"{shown} of {len(df)}" if top else f"{len(df)}")
    filtered = f" matching {where!r}" if where else ""
    caption = (f"search {search_run.info.run_name} ({search_run.info.run_id}): "
               f"{which} trials{filtered}, by {objective} ({direction})")
    if df.empty:
        return f"{caption}\n(no trials)"
    return f"{caption}\n{text}"


# -- the in-memory leaderboard ---------------------------------------------------------------
def leaderboard(trials: list[Any], pipeline_objective: str, direction: str = "max"
                ) -> pd.DataFrame:
    """``leaderboard.csv`` of the parent run, from the search's own records: best first by the
    objective (untrained trials last, in the order tried), :data:`LEADERBOARD_HEAD` first, scores
    rounded to :data:`LEADERBOARD_DIGITS` places (hyperparameters as tried)."""
    import pandas as pd

    objective = pipeline_objective
    head = [c.format(objective=objective) for c in LEADERBOARD_HEAD]
    hp_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for t in trials:
        hp_names.update(dict.fromkeys(t.candidate))
        metric_names.update(dict.fromkeys(k for k in t.metrics if k != objective))
    hps = [k for k in hp_names if k not in head and k != "run_id"]
    scores = [k for k in sorted(metric_names) if k not in head and k not in hp_names]
    rows = []
    for t in trials:
        status = getattr(t.status, "value", t.status)
        trained = status in (names.TrialStatus.COMPLETED.value, names.TrialStatus.PRUNED.value)
        rows.append({"trial_id": t.trial_id, objective: t.objective, "status": status,
                     "reason": t.reason, "params_total": t.params_total,
                     "epochs": t.epochs if trained else None, "train_seconds": t.seconds,
                     **{k: t.candidate.get(k) for k in hps},
                     **{k: t.metrics.get(k) for k in scores}, "run_id": t.run_id})
    df = pd.DataFrame(rows, columns=head + hps + scores + ["run_id"])
    for key in ("params_total", "epochs"):
        df[key] = df[key].astype("Int64")
    df[objective] = df[objective].astype("float64")
    for key in [objective, "train_seconds", *scores]:
        if tables.is_numeric(df[key]):
            df[key] = df[key].astype("float64").round(LEADERBOARD_DIGITS)
    untrained = (df["status"] != names.TrialStatus.COMPLETED.value).astype(int)
    return (df.assign(_untrained=untrained)
            .sort_values(["_untrained", objective], ascending=[True, direction == "min"],
                         na_position="last", kind="stable")
            .drop(columns="_untrained").reset_index(drop=True))


def leaderboard_markdown(df: pd.DataFrame) -> str:
    """The leaderboard as a markdown table (the ``leaderboard.md`` twin of the CSV)."""
    return tables.markdown(df)


# -- seed repeats (tracking/significance.py has the statistics) ------------------------------
def significance_verdict(experiment: str | None = None, search: str | None = None,
                         where: str | None = None) -> str:
    """``tunetrack compare --significance``: the chosen search's #1 against its #2."""
    from tunetrack.tracking.significance import significance_text
    from tunetrack.tracking.storeread import reader

    store = reader(where)
    search_run = find_search(store, experiment, search)
    objective, direction = search_objective(search_run)
    df = load_trials(store, search_run, where=where)
    return significance_text(df, objective, direction)


def log_repeats_table(client: Any, search_run_id: str) -> None:
    """``repeats.csv`` and ``repeats.md`` on the search run (with the #1-vs-#2 verdict)."""
    from tunetrack.tracking.significance import repeats_table, significance_text
    from tunetrack.tracking.storeread import MlflowRuns

    store = MlflowRuns(client)
    search_run = store.get_run(search_run_id)
    objective, direction = search_objective(search_run)
    df = load_trials(store, search_run)
    if not df.attrs.get("repeat_scores"):
        return
    table = repeats_table(df, objective, direction)
    client.log_text(search_run_id, table.to_csv(index=False), "repeats.csv")
    text = leaderboard_markdown(table.round(4))
    client.log_text(search_run_id, f"{text}\n\n{significance_text(df, objective, direction)}\n",
                    "repeats.md")
