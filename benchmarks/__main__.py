"""``python -m benchmarks [--only NAME ...] [--quick | --size SIZE]``: run, print, write RESULTS.md.

Benchmarks run one after another (never two at once: they would time each other). The report
names the machine and versions, because a figure means nothing without them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks import SIZES, Row

NAMES = ("tracking", "startup", "rejection", "compare", "memory", "quality", "efficiency",
         "hostile", "data", "gpu", "classic", "pruning", "scale")
RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": str(os.cpu_count()), "python": platform.python_version(),
            "platform": platform.platform()}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "count":
        return f"{value:,.0f}"
    text = f"{value:.4f}" if unit == "acc" else f"{value:.3g}"
    return f"{text} {unit}".strip() if unit not in ("acc", "") else text


def _verdict(row: Row) -> str:
    return {True: "met", False: "MISSED", None: ""}[row.met]


def table_lines(rows: list[Row]) -> list[str]:
    head = ["benchmark", "figure", "value", "baseline", "ratio", "goal", "result"]
    body = [[r.bench, r.figure, _num(r.value, r.unit),
             f"{_num(r.baseline, r.unit)} ({r.baseline_label})" if r.baseline is not None else "-",
             f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.goal or "-", _verdict(r)]
            for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(b) for b in body)]


def markdown(rows: list[Row], size: str, errors: dict[str, str], seconds: float,
             load: str = "") -> str:
    from tunetrack.tracking.versioning import git_commit, package_versions

    m = machine()
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    out = ["# tunetrack benchmarks", "",
           f"Written by `python -m benchmarks` (size `{size}`) on "
           f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, in {seconds / 60:.1f} min.", "",
           f"- machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}",
           f"- Python {m['python']}; {versions}", f"- commit: {git_commit() or 'unknown'}",
           *([f"- load average (1 min) {load}: the machine is shared, so absolute "
              "seconds are noisy; ratios against side-by-side baselines are the figures"]
             if load else []),
           "- every baseline was measured in the same run, side by side; goals on speed are "
           "ratios or budgets checked here, never in the tests", "",
           "| benchmark | figure | value | baseline | ratio | goal | result | notes |",
           "|---|---|---:|---|---:|---|---|---|"]
    for r in rows:
        base = f"{_num(r.baseline, r.unit)} ({r.baseline_label})" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        verdict = {True: "met", False: "**missed**", None: "-"}[r.met]
        cells = [r.bench, r.figure, _num(r.value, r.unit), base, ratio, r.goal or "-", verdict,
                 r.note]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    missed = [r for r in rows if r.met is False]
    out += ["", "## Goals missed", ""]
    if not missed and not errors:
        out.append("None: every figure with a goal met it.")
    for r in missed:
        ratio = f" ({r.ratio:.2f}x its baseline)" if r.ratio is not None else ""
        out.append(f"- **{r.bench}: {r.figure}** is {_num(r.value, r.unit)}{ratio}; the goal "
                   f"is {r.goal}. {r.note}")
        if r.detail:
            out += ["", "  Where the time goes:", "", "  ```",
                    *("  " + line for line in r.detail.splitlines()), "  ```", ""]
    for name, error in errors.items():
        out += [f"- **{name}** did not finish:", "", "  ```",
                *("  " + line for line in error.strip().splitlines()[-15:]), "  ```", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                        help=f"benchmarks to run: {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="shorter searches (size 'quick')")
    parser.add_argument("--size", choices=SIZES, help="smoke, quick or full (the default)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the report to write")
    args = parser.parse_args(argv)
    size = args.size or ("quick" if args.quick else "full")
    rows: list[Row] = []
    errors: dict[str, str] = {}
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    for name in args.only or NAMES:
        print(f"== {name} ({size}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            got = importlib.import_module(f"benchmarks.bench_{name}").run(size)
        except Exception:  # one broken benchmark must not lose the others' figures
            errors[name] = traceback.format_exc()
            print(errors[name], file=sys.stderr)
            continue
        rows += got
        print("\n".join(table_lines(got)), f"\n   ({time.perf_counter() - t0:.0f} s)\n",
              flush=True)
    print("\n".join(table_lines(rows)))
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    args.output.write_text(markdown(rows, size, errors, time.perf_counter() - start, load))
    print(f"\nwrote {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
