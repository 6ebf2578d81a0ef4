"""``tunetrack compare`` against a hand-filled MLflow store: no training, a few seconds in all."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tunetrack import names
from tunetrack.errors import TrackingError
from tunetrack.names import TrialStatus
from tunetrack.tracking import compare as cmp
from tunetrack.tracking import storeread

OBJ = "val_accuracy"
# trial_id, status, hyperparameters, best val_accuracy, params_total, reason
TRIALS = [
    ("00", "completed", {"optimizer": "adam", "learning_rate": 0.001, "blocks": 1,
                         "blocks.1.filters": 8}, 0.90, 1000, None),
    ("01", "completed", {"optimizer": "sgd", "learning_rate": 0.01, "blocks": 2,
                         "blocks.1.filters": 8, "blocks.2.filters": 16}, 0.95, 5000, None),
    ("02", "completed", {"optimizer": "adam", "learning_rate": 0.003, "blocks": 2,
                         "blocks.1.filters": 16, "blocks.2.filters": 16}, 0.93, 3000, None),
    ("03", "rejected", {"optimizer": "adam", "learning_rate": 0.002, "blocks": 3,
                        "blocks.1.filters": 4, "blocks.2.filters": 4, "blocks.3.filters": 4},
     None, None, "feature map: blocks.3 output is 0x0"),
    ("04", "failed", {"optimizer": "sgd", "learning_rate": 0.5, "blocks": 1,
                      "blocks.1.filters": 4}, None, None,
     "FloatingPointError: loss became NaN at epoch 2"),
    ("05", "completed", {"optimizer": "adam", "learning_rate": 0.0005, "blocks": 1,
                         "blocks.1.filters": 4}, 0.85, 500, None),
]
BY_OBJECTIVE = ["01", "02", "00", "05", "03", "04"]


def add_search(client, experiment_id: str, name: str, start: int,
               objective: str = OBJ) -> str:
    run = client.create_run(experiment_id, run_name=name, start_time=start, tags={
        names.TAG_ROLE: names.ROLE_SEARCH, names.TAG_OBJECTIVE: objective})
    client.log_batch(run.info.run_id, params=[_param("objective", objective),
                                              _param("tuner", "random"),
                                              _param("family", "cnn")])
    return run.info.run_id


def _param(key, value):
    from mlflow.entities import Param

    return Param(key, str(value))


def add_trial(client, experiment_id: str, parent: str, trial_id: str, status: str,
              hps: dict, best: float | None, params_total: int | None,
              reason: str | None, start: int) -> str:
    """A child run as the search writes it: tags, params, per-epoch series and final metrics."""
    from mlflow.entities import Metric, RunTag

    tags = {names.TAG_PARENT: parent, names.TAG_ROLE: names.ROLE_TRIAL,
            names.TAG_TRIAL_ID: trial_id, names.TAG_TRIAL_STATUS: status}
    if reason:
        tags[names.TAG_REASON] = reason
    run = client.create_run(experiment_id, run_name=f"trial-{trial_id}", start_time=start)
    metrics = []
    if best is not None:
        # the last epoch is worse than the best: compare must show the best, as the tuner ranked
        for step, value in enumerate([best - 0.2, best, best - 0.05]):
            metrics += [Metric(names.curve_name(OBJ), value, 0, step + 1),
                        Metric(names.curve_name("val_loss"), 1 - value, 0, step + 1)]
        metrics += [Metric("best_val_accuracy", best, 0, 0), Metric("final_val_accuracy",
                                                                    best - 0.05, 0, 0),
                    Metric(names.METRIC_PARAMS_TOTAL, params_total, 0, 0),
                    Metric(names.METRIC_EPOCHS_TRAINED, 3, 0, 0),
                    Metric(names.METRIC_TRAIN_SECONDS, 2.5, 0, 0)]
    elif status == "failed":
        metrics.append(Metric(names.METRIC_TRAIN_SECONDS, 0.7, 0, 0))
    client.log_batch(run.info.run_id, metrics=metrics,
                     params=[_param(k, v) for k, v in {**hps, "batch_size": 64}.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    return run.info.run_id


@pytest.fixture(scope="module")
def blank_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated store, copied for each test: MLflow's migrations take seconds."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("blank") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def new_store(blank_db: Path, folder: Path):
    """(uri, MlflowClient) of a fresh store in ``folder``."""
    from mlflow import MlflowClient

    shutil.copyfile(blank_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, MlflowClient(uri)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, blank_db: Path) -> SimpleNamespace:
    """Experiment 'digits' with an old and a new search; 'other' with the newest search."""
    root = tmp_path_factory.mktemp("store")
    uri, client = new_store(blank_db, root)
    digits = client.create_experiment("digits", artifact_location=(root / "a1").as_uri())
    other = client.create_experiment("other", artifact_location=(root / "a2").as_uri())
    old = add_search(client, digits, "old-search", 1_000)
    add_trial(client, digits, old, "00", "completed", {"optimizer": "adam"}, 0.5, 10, None, 1_001)
    new = add_search(client, digits, "new-search", 2_000)
    run_ids = {}
    for i, (tid, status, hps, best, total, reason) in enumerate(TRIALS):
        run_ids[tid] = add_trial(client, digits, new, tid, status, hps, best, total, reason,
                                 2_001 + i)
    newest = add_search(client, other, "newest-search", 3_000, objective="val_loss")
    add_trial(client, other, newest, "00", "completed", {"optimizer": "adam"}, 0.7, 10, None,
              3_001)
    return SimpleNamespace(uri=uri, old=old, new=new, newest=newest, run_ids=run_ids)


@pytest.fixture(params=["sqlite", "mlflow"])
def reader_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every compare test runs on both readers: SQLite read directly, and MlflowClient."""
    if request.param == "mlflow":
        monkeypatch.setattr(storeread.SqliteRuns, "open", classmethod(lambda cls, uri: None))
    return request.param


@pytest.fixture
def uri(filled: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, reader_kind: str) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", filled.uri)
    return filled.uri


def spy_tagged(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The keyword arguments of every trial/search query either reader answers."""
    seen: list[dict] = []
    for cls in (storeread.MlflowRuns, storeread.SqliteRuns):
        real = cls.tagged

        def spy(self, *args, _real=real, **kwargs):
            seen.append({"reader": type(self).__name__, **kwargs})
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "tagged", spy)
    return seen


def read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype={"trial_id": str})


# -- the table ---------------------------------------------------------------------------------
def test_rows_are_trials_sorted_by_objective_unfinished_last(uri, filled):
    df = read_csv(cmp.compare(experiment="digits", fmt="csv"))
    assert list(df["trial_id"]) == BY_OBJECTIVE
    assert list(df.columns[:6]) == ["trial_id", "status", OBJ, "params_total", "epochs",
                                    "train_seconds"]
    assert list(df.columns[-2:]) == ["run_id", "reason"]
    assert df[OBJ].iloc[0] == pytest.approx(0.95)  # the best epoch, not the last one
    assert list(df["status"])[-2:] == ["rejected", "failed"]
    assert df["reason"].iloc[-1].startswith("FloatingPointError")
    assert df["run_id"].iloc[0] == filled.run_ids["01"]


def test_hyperparameters_come_back_as_numbers_in_natural_order(uri, filled):
    from tunetrack.tracking.store import client

    mlclient = client()
    df = cmp.load_trials(mlclient, mlclient.get_run(filled.new))
    assert df["learning_rate"].dtype == "float64"
    assert str(df["blocks"].dtype) == "Int64"
    assert df["blocks.3.filters"].isna().sum() == 5  # inactive group elements stay missing
    hps = cmp.hyperparameter_columns(df, OBJ)
    assert hps == ["batch_size", "blocks", "blocks.1.filters", "blocks.2.filters",
                   "blocks.3.filters", "learning_rate", "optimizer"]


def test_top_keeps_the_best_and_only_the_hyperparameters_that_vary_among_them(uri):
    df = read_csv(cmp.compare(experiment="digits", top=2, fmt="csv"))
    assert list(df["trial_id"]) == ["01", "02"]
    # blocks (2, 2), blocks.2.filters (16, 16) and batch_size are the same for both
    assert {"optimizer", "learning_rate", "blocks.1.filters"} <= set(df.columns)
    assert not {"blocks", "blocks.2.filters", "batch_size", "blocks.3.filters"} & set(df.columns)
    every = read_csv(cmp.compare(experiment="digits", fmt="csv"))
    assert "blocks" in every.columns and "batch_size" not in every.columns


def test_sort_by_any_column_descending(uri):
    df = read_csv(cmp.compare(experiment="digits", sort="-params_total", fmt="csv"))
    assert list(df["trial_id"]) == ["01", "02", "00", "05", "03", "04"]
    df = read_csv(cmp.compare(experiment="digits", sort="learning_rate", fmt="csv"))
    assert list(df["trial_id"]) == ["05", "00", "03", "02", "01", "04"]
    df = read_csv(cmp.compare(experiment="digits", sort="params.learning_rate", fmt="csv"))
    assert list(df["trial_id"])[0] == "05"


def test_macro_f1_is_a_column_to_sort_by_whatever_the_objective(tmp_path, monkeypatch, blank_db):
    from mlflow.entities import Metric

    uri, client = new_store(blank_db, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    exp = client.create_experiment("imb", artifact_location=(tmp_path / "a").as_uri())
    search = add_search(client, exp, "s", 1_000)
    for i, (acc, f1) in enumerate([(0.95, 0.40), (0.90, 0.85)]):
        run = add_trial(client, exp, search, f"0{i}", "completed", {"optimizer": "adam"}, acc,
                        100, None, 1_001 + i)
        client.log_batch(run, metrics=[Metric("best_val_macro_f1", f1, 0, 0)])
    df = read_csv(cmp.compare(experiment="imb", fmt="csv"))
    assert list(df.columns[:7]) == ["trial_id", "status", OBJ, "params_total", "epochs",
                                    "train_seconds", "val_macro_f1"]
    assert list(df["trial_id"]) == ["00", "01"]
    df = read_csv(cmp.compare(experiment="imb", sort="-val_macro_f1", fmt="csv"))
    assert list(df["trial_id"]) == ["01", "00"] and list(df["val_macro_f1"]) == [0.85, 0.40]


def test_unknown_sort_column_names_the_columns(uri):
    with pytest.raises(TrackingError, match=r"cannot sort by 'lerning_rate'.*did you mean "
                                            r"'learning_rate'"):
        cmp.compare(experiment="digits", sort="lerning_rate")


def test_where_is_pushed_into_mlflow(uri, monkeypatch):
    from mlflow import MlflowClient

    seen = []
    real = MlflowClient.search_runs

    def spy(self, experiment_ids, filter_string="", *args, **kwargs):
        seen.append(filter_string)
        return real(self, experiment_ids, filter_string, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", spy)
    df = read_csv(cmp.compare(experiment="digits", where="params.optimizer = 'adam'",
                              fmt="csv"))
    assert list(df["trial_id"]) == ["02", "00", "05", "03"]
    assert "optimizer" not in df.columns  # no longer varies
    assert any("mlflow.parentRunId" in f and "params.optimizer = 'adam'" in f for f in seen)
    df = read_csv(cmp.compare(experiment="digits", fmt="csv",
                              where="params.optimizer = 'adam' and metrics.`size/params` > 600"))
    assert list(df["trial_id"]) == ["02", "00"]


def test_bad_where_is_a_tracking_error(uri):
    with pytest.raises(TrackingError, match=r"cannot filter trials with --where"):
        cmp.compare(experiment="digits", where="optimizer == adam or")


def test_formats(uri):
    table = cmp.compare(experiment="digits", fmt="table")
    lines = table.splitlines()
    assert lines[0].startswith("search new-search") and "6 trials" in lines[0]
    assert lines[1].split()[:3] == ["trial_id", "status", OBJ]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert lines[3].split()[:3] == ["01", "completed", "0.9500"]
    assert "\x1b[" not in table  # no colour codes when not a terminal
    assert lines[1].index("status") == lines[3].index("completed")  # aligned columns
    assert lines[1].index(OBJ) + len(OBJ) == lines[3].index("0.9500") + 6  # numbers right

    records = json.loads(cmp.compare(experiment="digits", fmt="json"))
    assert [r["trial_id"] for r in records] == BY_OBJECTIVE
    assert records[0]["params_total"] == 5000 and records[-1][OBJ] is None

    md = cmp.compare(experiment="digits", fmt="markdown").splitlines()
    assert md[0].startswith("| trial_id | status | val_accuracy |")
    assert md[1].startswith("|:---|:---|---:|")
    assert len(md) == 2 + len(TRIALS)
    assert all(line.count("|") == md[0].count("|") for line in md)

    with pytest.raises(TrackingError, match=r"unknown format 'yaml'"):
        cmp.compare(experiment="digits", fmt="yaml")


# -- choosing the search -----------------------------------------------------------------------
def test_most_recent_search_when_none_named(uri, filled):
    newest = json.loads(cmp.compare(fmt="json"))  # across experiments: 'other' is newest
    assert newest == json.loads(cmp.compare(search=filled.newest, fmt="json"))
    assert [r["trial_id"] for r in newest] == ["00"] and "val_loss" in newest[0]
    old = read_csv(cmp.compare(search=filled.old, fmt="csv"))
    assert len(old) == 1
    assert len(read_csv(cmp.compare(experiment="digits", fmt="csv"))) == len(TRIALS)


def test_unknown_experiment_lists_the_experiments(uri):
    with pytest.raises(TrackingError, match=r"no experiment 'digts'.*did you mean 'digits'.*"
                                            r"experiments: 'Default', 'digits', 'other'$"):
        cmp.compare(experiment="digts")


def test_unknown_run_lists_recent_searches(uri, filled):
    with pytest.raises(TrackingError, match=rf"no run 'nope'.*recent search runs: "
                                            rf"{filled.newest} \(newest-search\)"):
        cmp.compare(search="nope")


def test_trial_run_is_not_a_search(uri, filled):
    with pytest.raises(TrackingError, match=rf"is a trial of search '{filled.new}'.*"
                                            rf"--search {filled.new}"):
        cmp.compare(search=filled.run_ids["02"])


def test_search_outside_the_named_experiment(uri, filled):
    with pytest.raises(TrackingError, match=r"not in experiment 'other'"):
        cmp.compare(experiment="other", search=filled.new)


def test_empty_store(tmp_path, monkeypatch, blank_db):
    uri, _ = new_store(blank_db, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError, match=r"no tunetrack search runs in sqlite:"):
        cmp.compare()


def test_pages_are_followed(uri, filled, monkeypatch):
    from tunetrack.tracking.store import client

    monkeypatch.setattr(storeread, "PAGE_SIZE", 4)
    mlclient = client()
    df = cmp.load_trials(mlclient, mlclient.get_run(filled.new))
    assert sorted(df["trial_id"]) == sorted(t[0] for t in TRIALS)
    assert len(cmp.load_trials(mlclient, mlclient.get_run(filled.new), max_results=5)) == 5


# -- scale ---------------------------------------------------------------------------------------
def clone_trials(db: Path, template: str, parent: str, n: int) -> None:
    """Copy one real child run ``n`` times in a single transaction.

    Logging 1,000 runs through MlflowClient takes about a minute (two SQLAlchemy sessions per
    run); copying the rows the client wrote keeps the schema MLflow's own.
    """
    con = sqlite3.connect(db)
    uuids = [uuid.uuid4().hex for _ in range(n)]
    tables = [t for (t,) in con.execute("select name from sqlite_master where type='table'")
              if "run_uuid" in [c[1] for c in con.execute(f"pragma table_info({t})")]]
    for table in tables:
        cols = [c[1] for c in con.execute(f"pragma table_info({table})")]
        rows = con.execute(f"select * from {table} where run_uuid = ?", (template,)).fetchall()
        new_rows = []
        for i in range(n):
            run_uuid, trial = uuids[i], f"{i:04d}"
            score, size = 0.5 + 0.4 * ((i * 7919) % n) / n, 100 + (i * 104729) % 100_000
            rid = {"run_uuid": run_uuid}
            for row in rows:
                r = dict(zip(cols, row, strict=True), **rid)
                key = r.get("key")
                if table == "runs":
                    r["name"] = f"trial-{trial}"
                elif key == names.TAG_TRIAL_ID:
                    r["value"] = trial
                elif key == names.TAG_PARENT:
                    r["value"] = parent
                elif key == "learning_rate":
                    r["value"] = repr(1e-4 * (1 + i % 50))
                elif key in ("best_val_accuracy", names.METRIC_PARAMS_TOTAL):
                    r["value"] = score if key == "best_val_accuracy" else float(size)
                new_rows.append(tuple(r[c] for c in cols))
        if new_rows:
            marks = ",".join("?" * len(cols))
            con.executemany(f"insert into {table} values ({marks})", new_rows)
    con.commit()
    con.close()


def test_compare_scales_to_a_thousand_trials(tmp_path, monkeypatch, blank_db, reader_kind):
    uri, client = new_store(blank_db, tmp_path)
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    exp = client.create_experiment("big", artifact_location=(tmp_path / "art").as_uri())
    big = add_search(client, exp, "big-search", 1_000)
    template = add_trial(client, exp, big, "t", "completed", TRIALS[0][2], 0.9, 1000, None,
                         1_001)
    clone_trials(db, template, big, 1000)
    other = add_search(client, exp, "other-search", 500)  # older: not chosen, not listed
    clone_trials(db, template, other, 50)
    client.delete_run(template)  # deleted runs are not listed (active runs only)

    from mlflow import MlflowClient

    calls = {"get_run": 0, "search_runs": 0}
    for name in calls:
        real = getattr(MlflowClient, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, counted)
    queries = spy_tagged(monkeypatch)
    df = read_csv(cmp.compare(experiment="big", top=20, fmt="csv"))
    assert len(df) == 20
    assert df["val_accuracy"].is_monotonic_decreasing
    assert calls["get_run"] == 0  # the table comes from whole pages, no call per run
    # the newest search, then its 20 best children: two queries
    assert [(q["reader"], q["max_results"]) for q in queries] == [
        ("SqliteRuns" if reader_kind == "sqlite" else "MlflowRuns", n) for n in (1, 20)]
    assert calls["search_runs"] == (0 if reader_kind == "sqlite" else 2)
    assert "learning_rate" in df.columns
    records = json.loads(cmp.compare(experiment="big", fmt="json",
                                     where="metrics.best_val_accuracy > 0.85"))
    assert records and all(r[OBJ] > 0.85 for r in records)


# -- leaderboard ---------------------------------------------------------------------------------
def test_leaderboard_from_trial_records():
    from tunetrack.search.records import TrialRecord

    trials = [
        TrialRecord("00", TrialStatus.COMPLETED, {"learning_rate": 0.01, "blocks": 1},
                    run_id="r0", objective=0.9,
                    metrics={OBJ: 0.9, "best_val_accuracy": 0.9, "final_val_loss": 0.3},
                    params_total=1200, seconds=3.0, epochs=4),
        TrialRecord("01", TrialStatus.REJECTED, {"learning_rate": 0.1, "blocks": 3,
                                                 "blocks.3.filters": 8},
                    run_id="r1", reason="too big", seconds=0.01),
    ]
    trials.insert(0, TrialRecord("02", TrialStatus.COMPLETED, {"learning_rate": 0.02, "blocks": 1},
                                 run_id="r2", objective=0.812345678, metrics={},
                                 params_total=900, seconds=2.0, epochs=2))
    df = cmp.leaderboard(trials, OBJ)
    assert list(df["trial_id"]) == ["00", "02", "01"]  # best first, untrained last
    assert list(df.columns[:7]) == ["trial_id", OBJ, "status", "reason", "params_total",
                                    "epochs", "train_seconds"]
    assert df.loc[1, OBJ] == 0.8123  # scores rounded to 4 places
    assert df.loc[1, "learning_rate"] == 0.02  # hyperparameters as tried
    df = df.drop(index=1).reset_index(drop=True)
    assert {"learning_rate", "blocks", "blocks.3.filters", "best_val_accuracy",
            "final_val_loss"} <= set(df.columns)
    assert list(df.columns).count(OBJ) == 1
    assert list(df["status"]) == ["completed", "rejected"]
    assert cmp.leaderboard_markdown(df).splitlines()[0].startswith(f"| trial_id | {OBJ} |")
    assert df.loc[1, "reason"] == "too big" and pd.isna(df.loc[1, "params_total"])
    text = cmp.compare_table(df, objective=OBJ, direction="max", fmt="csv")
    assert read_csv(text)["trial_id"].tolist() == ["00", "01"]


@pytest.mark.parametrize("top", [1, 3, 6])
def test_top_asks_the_store_for_the_best_only(uri, monkeypatch, top):
    """The default order is pushed into search_runs; unfinished trials still come last."""
    queries = spy_tagged(monkeypatch)
    df = read_csv(cmp.compare(experiment="digits", top=top, fmt="csv"))
    assert list(df["trial_id"]) == BY_OBJECTIVE[:top]
    assert queries[-1]["max_results"] == top
    assert queries[-1]["order"] == "metrics.`best_val_accuracy` DESC"
    assert f"the best {top} trials" in cmp.compare(experiment="digits", top=top).splitlines()[0]


# -- the two readers -----------------------------------------------------------------------------
CALLS = [dict(experiment="digits"), dict(experiment="digits", top=3),
         dict(experiment="digits", sort="-learning_rate", fmt="json"), dict(),
         dict(search="__new__", fmt="markdown"), dict(experiment="other", fmt="csv")]


@pytest.mark.parametrize("kwargs", CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_sqlite_reader_gives_mlflows_output(filled, monkeypatch, kwargs):
    """Byte for byte what the MlflowClient path prints, for every shape of call."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", filled.uri)
    kwargs = {k: filled.new if v == "__new__" else v for k, v in kwargs.items()}
    assert isinstance(storeread.reader(), storeread.SqliteRuns)
    fast = cmp.compare(**kwargs)
    monkeypatch.setattr(storeread.SqliteRuns, "open", classmethod(lambda cls, uri: None))
    assert isinstance(storeread.reader(), storeread.MlflowRuns)
    assert fast == cmp.compare(**kwargs)


def test_reader_falls_back_to_mlflow(filled, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", filled.uri)
    assert isinstance(storeread.reader(where="params.optimizer = 'adam'"), storeread.MlflowRuns)
    monkeypatch.setattr(storeread, "KNOWN_SCHEMAS", frozenset({"some-other-revision"}))
    assert isinstance(storeread.reader(), storeread.MlflowRuns)  # a schema it does not know
    assert storeread.SqliteRuns.open(f"sqlite:///{tmp_path / 'absent.db'}") is None
    assert storeread.SqliteRuns.open("http://localhost:5000") is None


def test_compare_command_does_not_import_mlflow(filled, tmp_path):
    """``tunetrack compare`` on the embedded store: MLflow's ~3 s import is never paid."""
    import os
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from tunetrack.cli import main; "
            "r = CliRunner().invoke(main, ['compare', '--experiment', 'digits', '--top', '2']); "
            "print(r.output); print('mlflow imported:', 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MLFLOW_TRACKING_URI": filled.uri}, cwd=tmp_path,
                         timeout=120, check=True).stdout
    assert "the best 2 trials" in out and "mlflow imported: False" in out


def test_stores_of_tunetrack_0_1_keep_their_sizes_and_times():
    """0.1 logged params_total, epochs_trained, train_seconds; compare and resume read them."""
    from tunetrack import names

    old = {"params_total": 8986.0, "epochs_trained": 2.0, "train_seconds": 1.5}
    assert names.read_metric(old, names.METRIC_PARAMS_TOTAL) == 8986.0
    assert names.read_metric(old, names.METRIC_EPOCHS_TRAINED) == 2.0
    assert names.read_metric({**old, names.METRIC_TRAIN_SECONDS: 3.0},
                             names.METRIC_TRAIN_SECONDS) == 3.0  # the current name wins
    assert names.read_metric({}, names.METRIC_SEARCH_SECONDS, 0.0) == 0.0
