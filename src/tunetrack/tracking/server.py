"""``tunetrack server``: a real MLflow tracking server over tunetrack's store.

Workers on several processes or hosts log through it (HTTP) instead of opening the SQLite file
themselves; artifacts are proxied (``--serve-artifacts``), so workers need no shared disk.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tunetrack.tracking.store import DB_NAME, STORE_DIR


def default_backend_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when it names a database, else SQLite under ``./mlruns``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri and not uri.startswith(("http://", "https://", "databricks")):
        return uri
    store = Path.cwd() / STORE_DIR
    store.mkdir(exist_ok=True)
    return f"sqlite:///{store / DB_NAME}"


def with_driver(uri: str) -> str:
    """A ``postgresql://`` URI names the driver tunetrack installs (psycopg2): SQLAlchemy 2.1
    otherwise picks psycopg 3, which is not installed."""
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme):
            return "postgresql+psycopg2://" + uri[len(scheme):]
    return uri


def server_command(*, host: str = "127.0.0.1", port: int = 5000,
                   backend_store_uri: str | None = None,
                   artifacts_destination: str | None = None) -> list[str]:
    """The ``mlflow server`` command line tunetrack runs."""
    # MLflow 3's server also starts job consumers (GenAI scoring, trace archival): two more
    # processes a tracking server for searches never uses
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    backend = with_driver(backend_store_uri or default_backend_uri())
    artifacts = artifacts_destination or str(Path.cwd() / STORE_DIR / "artifacts")
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        artifacts = Path(artifacts).resolve().as_uri()
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
            "--serve-artifacts", "--artifacts-destination", artifacts,
            "--host", host, "--port", str(port), "--workers", "1"]
