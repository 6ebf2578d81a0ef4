"""Hostile YAML: each worst case answered by ``tunetrack validate`` in one line, exit 2, within
2 s and 200 MiB (the goals of issue 19), beside a good pipeline validated the same way.

Each case runs in a fresh ``tunetrack validate`` process; its wall time and peak RSS (from
``wait4``) are the figures. Before the limits, the billion laughs took 150 s and 4.9 GiB, and a
10 MB file of keys or of one long list more than 150 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
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


# A small interpreter starts the command and reports its exit, peak RSS and time. Measured from
# this (large) benchmark process, a child's ru_maxrss would include the pages it shared with
# the parent at fork time: 262 MiB instead of the command's own 54 MiB.
_WRAPPER = """\
import json, os, subprocess, sys, time
t0 = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stderr=subprocess.STDOUT)
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss,
                             time.perf_counter() - t0]))
"""


def measure(path: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MiB, exit code, output) of ``tunetrack validate PATH``."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(BIN / "tunetrack"), "validate",
                           str(path)], env=child_env(), capture_output=True, cwd=path.parent,
                          check=True)
    code, maxrss_kib, seconds = json.loads(done.stderr)
    return seconds, maxrss_kib / 1024, code, done.stdout.decode("utf-8", "replace")


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
