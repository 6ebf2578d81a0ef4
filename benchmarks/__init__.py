"""tunetrack's benchmarks: every figure beside a baseline measured in the same run.

Each ``bench_*`` module exposes ``run(size) -> list[Row]`` with ``size`` in :data:`SIZES`.
Speed goals are ratios against a side-by-side baseline or plain budgets checked here, never
timed assertions in the tests (the tests run every benchmark in its ``smoke`` size only).

Heavy work runs in a fresh interpreter through :func:`call`, so one benchmark's imports,
autolog patches and memory never leak into another's figures. The ``smoke`` size runs the
same worker functions in-process, because a TensorFlow import costs ~10 s here.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZES = ("smoke", "quick", "full")
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
             "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
             "PYTHONWARNINGS": "ignore"}


@dataclass
class Row:
    """One figure: its value beside the baseline measured in the same run, and its goal."""

    bench: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""
    detail: str = ""  # multi-line text for RESULTS.md only (e.g. a profile summary)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """The samples behind a median, for the note column: noise is visible, not hidden."""
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB, from /proc/self/status (Linux)."""
    found = {"VmRSS": 0, "VmHWM": 0}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in found:
                found[key] = int(line.split()[1])
    return found["VmRSS"], found["VmHWM"]


_TEMPLATE: list[Path] = []


def store_uri(folder: Path) -> str:
    """A fresh SQLite MLflow store inside ``folder``, copied from a migrated empty one.

    Creating a store runs MLflow's schema migrations (~6 s here); no figure is about that, so
    each benchmark gets a copy of one made once per process.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    if not db.exists():
        if not _TEMPLATE:
            from mlflow import MlflowClient

            template = Path(tempfile.mkdtemp(prefix="tunetrack-bench-store-")) / "mlflow.db"
            MlflowClient(f"sqlite:///{template}").search_experiments()
            _TEMPLATE.append(template)
        shutil.copyfile(_TEMPLATE[0], db)
    return f"sqlite:///{db}"


@contextlib.contextmanager
def workdir(folder: Path, env: dict[str, str] | None = None) -> Iterator[Path]:
    """Run in ``folder`` with ``env`` set, then restore both: caches and stores stay out of git."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    os.environ.update(QUIET_ENV | (env or {}))
    try:
        yield folder
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker interpreter: quiet TF, ``benchmarks`` importable."""
    env = dict(os.environ) | QUIET_ENV | (extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "src"),
                                                    env.get("PYTHONPATH", "")) if p)
    return env


def call(target: str, payload: dict[str, Any], *, folder: Path, in_process: bool = False,
         env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``module:function(payload) -> dict`` in ``folder``, in a fresh interpreter by default.

    The result travels back as JSON either way, so both paths return the same thing.
    """
    if in_process:
        module, name = target.split(":")
        with workdir(folder, env):
            return json.loads(json.dumps(getattr(importlib.import_module(module), name)(payload)))
    folder.mkdir(parents=True, exist_ok=True)
    fd, out = tempfile.mkstemp(suffix=".json", dir=folder)
    os.close(fd)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, benchmarks; benchmarks.serve(sys.argv[1:])",
         target, json.dumps(payload), out],
        cwd=folder, env=child_env(env), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {target} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(Path(out).read_text())


def serve(argv: list[str]) -> None:
    """The worker side of :func:`call`: ``target payload_json out_file``."""
    target, payload, out = argv
    module, name = target.split(":")
    result = getattr(importlib.import_module(module), name)(json.loads(payload))
    Path(out).write_text(json.dumps(result))


def time_command(argv: list[str], repeats: int, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> list[float]:
    """Wall seconds of ``repeats`` runs of a command (a failing command is an error)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=child_env(env), capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return times


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def tmp_root(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"tunetrack-bench-{name}-"))
