"""Hostile YAML: each worst case answered by ``tunetrack validate`` in one line, exit 2, within
2 s and 200 MiB (the goals of issue 19), beside a good pipeline validated the same way.

Each case runs in a fresh ``tunetrack validate`` process; its wall time and peak RSS (from
``wait4``) are the figures. Before the limits, the billion laughs took 150 s and 4.9 GiB, and a
10 MB file of keys or of one long list more than 150 s.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import BIN, Row, check_size, child_env, median

NAME = "hostile"
GOAL_S, GOAL_MIB = 2.0, 200.0
GOOD_SPACE = "family: cnn\nblocks:\n  count: 1\n  filters: 4\n  kernel_size: 3\n"


def cases() -> dict[str, str]:
    """The worst files: each breaks one limit of ``tunetrack.space.yamlio`` (or is just big)."""
    laughs = ["family: cnn", 'l0: &l0 "lol"'] + [
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return {
        "billion laughs": "\n".join(laughs) + "\n",
        "self-referencing alias": "family: cnn\na: &a [*a]\n",
        "10 MB list": "space: s.yaml\ntuner:\n  max_trials: [" + ", ".join(["1"] * 3_400_000)
                      + "]\n",
        "1 MB list (under the size limit)": "space: s.yaml\ntuner:\n  max_trials: ["
                                            + ", ".join(["1"] * 330_000) + "]\n",
        "300,000 unknown keys": "family: cnn\n" + "".join(f"k{i}: 1\n" for i in range(300_000)),
        "100,000 unknown keys (under the size limit)":
            "family: cnn\n" + "".join(f"k{i}: 1\n" for i in range(100_000)),
        "100,000 nested brackets": "family: cnn\na: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "1 MB string": "family: cnn\nx: '" + "a" * 1_000_000 + "'\n",
    }


SMOKE = ("billion laughs", "self-referencing alias")


def measure(path: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MiB, exit code, output) of ``tunetrack validate PATH``."""
    t0 = time.perf_counter()
    process = subprocess.Popen([str(BIN / "tunetrack"), "validate", str(path)],
                               env=child_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, cwd=path.parent)
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, process.returncode, output


def run(size: str) -> list[Row]:
    check_size(size)
    folder = Path(tempfile.mkdtemp(prefix="tunetrack-bench-hostile-"))
    (folder / "s.yaml").write_text(GOOD_SPACE)
    (folder / "good.yaml").write_text("space: s.yaml\n")
    repeats = 1 if size == "smoke" else 3
    base = median([measure(folder / "good.yaml")[0] for _ in range(repeats)])
    rows = []
    for i, (name, text) in enumerate(cases().items()):
        if size == "smoke" and name not in SMOKE:
            continue
        path = folder / f"case{i}.yaml"
        path.write_text(text)
        runs = [measure(path) for _ in range(repeats)]
        seconds = median([r[0] for r in runs])
        peak = max(r[1] for r in runs)
        code, output = runs[0][2], runs[0][3]
        lines = output.strip().splitlines()
        one_line = code == 2 and len(lines) == 1
        rows.append(Row(NAME, f"validate: {name}", seconds, "s", base,
                        "validate a good pipeline", f"< {GOAL_S:g} s, < {GOAL_MIB:g} MiB, "
                        "exit 2, one line",
                        seconds < GOAL_S and peak < GOAL_MIB and one_line,
                        f"peak RSS {peak:.0f} MiB; exit {code}; "
                        f"{len(path.read_bytes()):,} bytes; says: "
                        f"{lines[0][len(str(path)):][:90] if lines else '(nothing)'}"))
    return rows
