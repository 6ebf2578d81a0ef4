"""Stores tunetrack cannot write, a fresh store opened by several processes at once, and broken
image files: one line each, at once. Tests run as root, so "cannot write" is made real where it
can be (a path under a regular file, SQLite's own read-only error) and simulated otherwise."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tunetrack.errors import TrackingError
from tunetrack.tracking import store


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def point(db: Path) -> Path:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        store._READY.discard(f"sqlite:///{db}")
        return db
    return point


def test_store_folder_under_a_regular_file(tmp_path: Path, uri) -> None:
    (tmp_path / "afile").write_text("x")
    uri(tmp_path / "afile" / "mlruns" / "mlflow.db")
    with pytest.raises(TrackingError, match=rf"^cannot create the store folder "
                                            rf"{tmp_path / 'afile' / 'mlruns'} as user "
                                            rf"{store.user_name()}: Not a directory"):
        store.client()


def test_default_store_in_a_folder_that_cannot_hold_one(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mlruns").write_text("a file where the store folder belongs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(TrackingError, match=r"^cannot create the store folder .*mlruns as user"):
        store.tracking_uri()


def test_read_only_database(tmp_path: Path, uri, monkeypatch) -> None:
    db = uri(tmp_path / "s" / "mlflow.db")
    db.parent.mkdir()
    sqlite3.connect(db).close()
    real = os.access
    monkeypatch.setattr(store.os, "access", lambda p, m: False if Path(p) == db else real(p, m))
    with pytest.raises(TrackingError, match=rf"^the store {db} is read-only for user "
                                            rf"{store.user_name()}; make it writable"):
        store.client()


def test_folder_not_writable(tmp_path: Path, uri, monkeypatch) -> None:
    db = uri(tmp_path / "s" / "mlflow.db")
    db.parent.mkdir()
    real = os.access
    monkeypatch.setattr(store.os, "access",
                        lambda p, m: False if Path(p) == db.parent else real(p, m))
    with pytest.raises(TrackingError, match=rf"^the store folder {db.parent} is not writable "
                                            rf"by user {store.user_name()} \(SQLite writes its "
                                            rf"journal"):
        store.client()


def test_sqlite_read_only_error_is_one_line_not_retried(tmp_path: Path, uri,
                                                       monkeypatch) -> None:
    db = uri(tmp_path / "ro.db")
    holder = sqlite3.connect(db)
    holder.execute("create table t (x)")
    holder.commit()
    monkeypatch.setattr(store.time, "sleep", lambda s: pytest.fail("must not retry"))

    def insert() -> None:
        other = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            other.execute("insert into t values (1)")
        finally:
            other.close()

    with pytest.raises(TrackingError, match=rf"^cannot write the store {db} as user "
                                            rf"{store.user_name()}: attempt to write a readonly"):
        store.write(insert)
    holder.close()


def test_an_empty_experiment_name_is_refused() -> None:
    with pytest.raises(TrackingError, match=r"an experiment needs a name, got ''"):
        store.get_or_create_experiment(None, "")  # type: ignore[arg-type]


@pytest.mark.slow
def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    code = ("from tunetrack.tracking.store import SearchTracker\n"
            "t = SearchTracker('same')\n"
            "log = t.start_search('s', {})\n"
            "t.end_run(log.run_id)\n"
            "print(t.experiment_id)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"}
    children = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0, 0], [e[-800:] for _, e in outs]
    assert {o.strip() for o, _ in outs} == {"1"}  # one experiment, shared


@pytest.mark.slow
def test_two_searches_started_at_once_on_a_fresh_store_both_finish(tmp_path: Path) -> None:
    """Both create MLflow's tables at the same moment; each records every one of its trials."""
    from mlflow import MlflowClient

    from tunetrack import names

    from .conftest import write_pipeline

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3"}
    searches = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        pipeline = write_pipeline(folder, trials=2, epochs=1, name=name)
        searches.append(subprocess.Popen(
            [sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "-q"], env=env,
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in searches]
    assert [p.returncode for p in searches] == [0, 0], [o[-1500:] for o in outs]
    client = MlflowClient(uri)
    for name in ("first", "second"):
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id])
        trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
        assert [r.data.tags[names.TAG_TRIAL_STATUS] for r in trials] == ["completed"] * 2
        assert all(r.info.status == "FINISHED" for r in runs)


# -- image files -------------------------------------------------------------------------------
def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


IMAGE_CASES = [
    ("empty", b"", r"not a recognised image format"),
    ("text", b"hello, not an image", r"not a recognised image format"),
    ("truncated-png", None, r"(not a recognised image format|OSError|SyntaxError)"),
    ("decompression-bomb", _png_header(60_000, 60_000), r"DecompressionBombError"),
    ("png-magic-only", b"\x89PNG\r\n\x1a\n", r"(not a recognised image format|OSError)"),
]


@pytest.mark.parametrize("name, raw, reason", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_a_hostile_image_is_one_reason_not_a_crash(tmp_path: Path, name: str, raw: bytes | None,
                                                   reason: str) -> None:
    import re

    from tunetrack.data import load_images

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), "L").save(good)
    bad = tmp_path / f"{name}.png"
    bad.write_bytes(raw if raw is not None else good.read_bytes()[:40])
    x, errors = load_images([good, bad], image_size=(8, 8), color_mode="grayscale")
    assert x.shape == (1, 8, 8, 1)
    assert len(errors) == 1 and errors[0][0] == str(bad)
    assert "\n" not in errors[0][1] and re.search(reason, errors[0][1]), errors
