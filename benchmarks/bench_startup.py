"""Start-up: ``tunetrack --help`` and ``tunetrack compare --help`` against ``mlflow --help``.

A CLI that imports TensorFlow or MLflow at module level pays seconds before printing help;
tunetrack promises not to. Each command runs as a subprocess, the median of several runs.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks import BIN, Row, check_size, child_env, median, spread, time_command

NAME = "startup"
GOAL_S = 0.5
REPEATS = {"smoke": 1, "quick": 5, "full": 10}
HEAVY = ("tensorflow", "keras", "keras_tuner", "mlflow", "pandas", "matplotlib")


def heavy_imports() -> list[str]:
    """Heavy packages that importing the CLI module pulls in (should be none)."""
    code = ("import sys, tunetrack.cli; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                         text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def run(size: str) -> list[Row]:
    check_size(size)
    n = REPEATS[size]
    tt, mlflow = str(BIN / "tunetrack"), str(BIN / "mlflow")
    if size != "smoke":  # warm the page cache for every command alike
        time_command([tt, "--help"], 1)
        time_command([mlflow, "--help"], 1)
    # interleaved, so a colleague's burst of CPU hits all three alike
    samples: dict[str, list[float]] = {"help": [], "compare": [], "mlflow": []}
    for _ in range(n):
        samples["help"] += time_command([tt, "--help"], 1)
        samples["compare"] += time_command([tt, "compare", "--help"], 1)
        samples["mlflow"] += time_command([mlflow, "--help"], 1)
    base = median(samples["mlflow"])
    heavy = heavy_imports()
    note = "heavy modules imported by tunetrack.cli: " + (", ".join(heavy) or "none")
    rows = []
    for key, figure in (("help", "tunetrack --help"), ("compare", "tunetrack compare --help")):
        value = median(samples[key])
        rows.append(Row(NAME, figure, value, "s", base, "mlflow --help", f"< {GOAL_S} s",
                        value < GOAL_S, f"median of {n}: {spread(samples[key])}; {note}"))
    rows.append(Row(NAME, "mlflow --help", base, "s", note=f"median of {n}: "
                    f"{spread(samples['mlflow'])}"))
    return rows
