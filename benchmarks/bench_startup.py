"""Start-up: ``tunetrack --help`` and ``tunetrack compare --help`` against ``mlflow --help``,
and ``tunetrack plan`` of every architecture preset.

A CLI that imports TensorFlow or MLflow at module level pays seconds before printing help;
tunetrack promises not to. Planning a preset (VGG-19: 143 M parameters) is arithmetic, so it
answers in well under half a second without TensorFlow. Each command runs as a subprocess, the
median of several runs.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks import BIN, ROOT, Row, check_size, child_env, median, spread, time_command

NAME = "startup"
GOAL_S = 0.5
REPEATS = {"smoke": 1, "quick": 5, "full": 10}
HEAVY = ("tensorflow", "keras", "keras_tuner", "mlflow", "pandas", "matplotlib")
PRESETS = sorted((ROOT / "search_spaces" / "presets").glob("*.yaml"))
PLAN_GOAL_S = 0.5


def plan_imports() -> list[str]:
    """Heavy packages that planning every preset pulls in (should be none)."""
    code = ("import sys; from tunetrack.space import load_space, plan_candidate\n"
            f"for p in {[str(p) for p in PRESETS]!r}:\n"
            "    s = load_space(p); plan_candidate(s.family, s.defaults(), s.input_shape, "
            "s.classes)\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                         text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def plan_rows(n: int) -> list[Row]:
    """``tunetrack plan PRESET`` for each preset, at its published input size."""
    tt = str(BIN / "tunetrack")
    times = {p.stem: median(time_command([tt, "plan", str(p)], n)) for p in PRESETS}
    slowest = max(times, key=lambda k: times[k])
    heavy = plan_imports()
    note = ("; ".join(f"{k} {v:.3g} s" for k, v in times.items())
            + f"; median of {n} each; heavy modules imported by planning: "
            + (", ".join(heavy) or "none"))
    return [Row(NAME, f"tunetrack plan PRESET, slowest ({slowest})", times[slowest], "s",
                goal=f"< {PLAN_GOAL_S} s, no TensorFlow",
                met=times[slowest] < PLAN_GOAL_S and not heavy, note=note)]


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
    return rows + plan_rows(n)
