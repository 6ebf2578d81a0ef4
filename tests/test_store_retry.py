"""Only SQLite's busy/locked errors are retried, decided by error code, not by message text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tunetrack.tracking import store


def _sqlite_error(tmp_path: Path, kind: str) -> sqlite3.OperationalError:
    path = tmp_path / f"{kind}.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (x)")
    try:
        if kind == "locked":
            holder.execute("begin exclusive")
            other = sqlite3.connect(path, timeout=0)
        else:
            other = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("insert into t values (1)")
        other.close()
    finally:
        holder.close()
    return caught.value


def _as_mlflow_raises_it(error: sqlite3.OperationalError) -> Exception:
    """As MLflow's SQLAlchemy store raises it: sqlite3 -> SQLAlchemy -> MlflowException."""
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise sqlalchemy.exc.OperationalError("INSERT ...", {}, error) from error
        except sqlalchemy.exc.OperationalError as wrapped:
            raise MlflowException(str(wrapped), error_code="TEMPORARILY_UNAVAILABLE") from wrapped
    except MlflowException as exc:
        return exc


def test_locked_is_recognised_through_mlflows_wrapping(tmp_path):
    locked = _sqlite_error(tmp_path, "locked")
    assert "locked" in str(locked)
    assert store.is_locked(locked)
    assert store.is_locked(_as_mlflow_raises_it(locked))


def test_read_only_is_not_a_lock(tmp_path):
    readonly = _sqlite_error(tmp_path, "readonly")
    assert not store.is_locked(readonly)
    assert not store.is_locked(_as_mlflow_raises_it(readonly))
    # the text alone decides nothing: a message that merely says "locked" is not retried
    assert not store.is_locked(RuntimeError("database is locked"))


def test_retry_locked_retries_a_lock_then_succeeds(tmp_path, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(store.time, "sleep", sleeps.append)
    locked = _as_mlflow_raises_it(_sqlite_error(tmp_path, "locked"))
    calls = []

    def flaky(value):
        calls.append(value)
        if len(calls) < 3:
            raise locked
        return value * 2

    assert store.retry_locked(flaky, 21) == 42
    assert len(calls) == 3 and sleeps == [0.1, 0.2]


def test_retry_locked_gives_up_after_its_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(store.time, "sleep", lambda s: None)
    locked = _as_mlflow_raises_it(_sqlite_error(tmp_path, "locked"))
    calls = []

    def always():
        calls.append(1)
        raise locked

    with pytest.raises(type(locked)):
        store.retry_locked(always)
    assert len(calls) == store.LOCKED_RETRIES


def test_retry_locked_raises_other_errors_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(store.time, "sleep", lambda s: pytest.fail("must not sleep"))
    readonly = _as_mlflow_raises_it(_sqlite_error(tmp_path, "readonly"))
    calls = []

    def fails():
        calls.append(1)
        raise readonly

    with pytest.raises(type(readonly), match="readonly"):
        store.retry_locked(fails)
    assert calls == [1]
