"""Every benchmark in its smoke size, so none can rot; no timing is asserted here, ever."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
from benchmarks import Row
from benchmarks.__main__ import NAMES, main, markdown, table_lines

pytestmark = pytest.mark.xdist_group("benchmarks")  # heavy: keep them on one worker


def _check(rows: list[Row], bench: str) -> None:
    assert rows, f"{bench} returned no rows"
    for row in rows:
        assert row.bench == bench
        assert row.value is not None and math.isfinite(row.value), row
        if row.goal:
            assert row.met in (True, False), row
        if row.baseline is not None:
            assert row.baseline_label, row


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != "startup"])
def test_benchmark_smoke(name: str) -> None:
    rows = importlib.import_module(f"benchmarks.bench_{name}").run("smoke")
    _check(rows, name)


def test_rejection_never_imports_keras() -> None:
    # in-process keras may already be imported by other tests, so ask a fresh interpreter
    from benchmarks import call, tmp_root
    from benchmarks.bench_rejection import plan_worker

    got = call("benchmarks.bench_rejection:plan_worker", {"n": 50, "seed": 1},
               folder=tmp_root("test"))
    assert got["heavy"] == []
    # in-process: seeded, and the benchmark's space rejects some candidates but not all
    first, again = plan_worker({"n": 200, "seed": 1}), plan_worker({"n": 200, "seed": 1})
    assert first["rejected"] == again["rejected"]
    assert 0 < sum(first["rejected"].values()) < 200, first["rejected"]


def test_tracking_profile_names_tunetrack() -> None:
    import cProfile

    from benchmarks.bench_tracking import profile_summary

    from tunetrack.space.language import load_space
    from tunetrack.space.plan import plan_candidate

    space = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "cnn.yaml")
    profiler = cProfile.Profile()
    profiler.runcall(plan_candidate, "cnn", space.defaults(), (32, 32, 3), 10)
    assert "tunetrack/space/plan.py" in profile_summary(profiler)


def test_main_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "RESULTS.md"
    assert main(["--only", "startup", "--size", "smoke", "--output", str(out)]) == 0
    text = out.read_text()
    assert "| startup | tunetrack --help |" in text
    assert "CPUs" in text and "keras" in text
    assert "tunetrack --help" in capsys.readouterr().out


def test_report_says_missed_goals_plainly() -> None:
    rows = [Row("tracking", "wall", 2.0, "s", 1.0, "bare", "<= 1.05x bare", False, "n",
                detail="  9.00 s  tunetrack/artifacts.py:51 log_trial"),
            Row("startup", "help", 0.2, "s", 2.0, "mlflow", "< 0.5 s", True)]
    text = markdown(rows, "smoke", {"quality": "Traceback\nBoom"}, 1.0)
    assert "**tracking: wall** is 2 s (2.00x its baseline); the goal is <= 1.05x bare" in text
    assert "log_trial" in text and "**quality** did not finish" in text and "Boom" in text
    assert "MISSED" in "\n".join(table_lines(rows))


def test_hostile_smoke_is_one_line_each() -> None:
    from benchmarks.bench_hostile import run

    rows = run("smoke")
    _check(rows, "hostile")
    assert [r.figure for r in rows] == ["validate: billion laughs",
                                        "validate: self-referencing alias"]
    assert all("exit 2" in r.note for r in rows), rows
