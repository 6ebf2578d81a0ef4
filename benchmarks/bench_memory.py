"""Memory: peak RSS of a 30-trial search of tiny models, and its growth from trial 5 to the last.

A search that keeps every trial's model, graph, figure or history alive grows with the number of
trials and dies on a long run. RSS is read from /proc/self/status by a ``Reporter`` whose
``trial_ended`` hook samples it; the baseline is bare keras-tuner on the same space and data,
sampled after each ``fit``. Each variant runs in its own interpreter.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks import Row, call, check_size, rss_kib, store_uri, tmp_root

NAME = "memory"
GOAL = 0.10
# trials, epochs, the trial growth is measured from
SIZES = {"smoke": (2, 1, 1), "quick": (30, 1, 5), "full": (30, 2, 5)}
SPACE = """\
family: cnn
blocks:
  count: {int: [1, 2]}
  filters: {choice: [4, 8]}
  kernel_size: 3
  padding: same
  pooling: {choice: [max, none]}
dense:
  count: {int: [0, 1]}
  units: {choice: [8, 16]}
learning_rate: {float: [1.0e-3, 1.0e-2], log: true}
batch_size: 64
optimizer: adam
"""


def write_pipeline(folder: Path, trials: int, epochs: int) -> Path:
    (folder / "memory_space.yaml").write_text(SPACE)
    path = folder / "memory.yaml"
    path.write_text(f"""\
name: memory
experiment: bench-memory
space: memory_space.yaml
data: {{source: digits, seed: 0}}
tuner: {{kind: random, max_trials: {trials}, seed: 3}}
training: {{epochs: {epochs}, patience: null}}
""")
    return path


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """One search; RSS (KiB) after every trained trial and the peak at the end."""
    import tempfile

    from benchmarks.bench_tracking import _bare_search
    from tunetrack.names import TrialStatus
    from tunetrack.search.progress import Reporter
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(write_pipeline(Path.cwd(), payload["trials"], payload["epochs"]))
    samples: list[int] = []

    class RssReporter(Reporter):
        def trial_ended(self, record: Any, *, best: Any, elapsed: float) -> None:
            if record.status is TrialStatus.COMPLETED:
                samples.append(rss_kib()[0])

    start = rss_kib()[0]
    if payload["variant"] == "tunetrack":
        from tunetrack.search.session import run_search

        run_search(pipeline, reporter=RssReporter())
    else:
        _bare_search(pipeline, tempfile.mkdtemp(prefix="kt-", dir="."),
                     on_trial=lambda: samples.append(rss_kib()[0]))
    return {"samples": samples, "peak": rss_kib()[1], "start": start}


def run(size: str) -> list[Row]:
    check_size(size)
    trials, epochs, first = SIZES[size]
    root = tmp_root(NAME)
    smoke = size == "smoke"
    # BENCH_KERAS_BACKEND=jax python -m benchmarks --only memory: the same on another backend
    backend = os.environ.get("BENCH_KERAS_BACKEND", "tensorflow")
    env = {"MLFLOW_TRACKING_URI": store_uri(root / "store"), "KERAS_BACKEND": backend}
    try:
        got = {v: call(f"{__name__}:worker", {"variant": v, "trials": trials, "epochs": epochs},
                       folder=root / v, env=env, in_process=smoke)
               for v in ("bare", "tunetrack")}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def growth(samples: list[int]) -> float:
        return samples[-1] / samples[first - 1] - 1

    tt, bare = got["tunetrack"], got["bare"]
    caveat = " (smoke: in-process, figures meaningless)" if smoke else ""
    mib = [round(s / 1024) for s in tt["samples"]]
    return [
        Row(NAME, f"RSS growth trial {first} -> {len(tt['samples'])}", 100 * growth(tt["samples"]),
            "%", 100 * growth(bare["samples"]), "bare keras-tuner growth",
            f"<= {100 * GOAL:.0f}%", growth(tt["samples"]) <= GOAL,
            f"{trials} trials x {epochs} epochs, tiny CNNs, {backend}; tunetrack RSS MiB per "
            f"trial: {mib}{caveat}"),
        Row(NAME, "peak RSS", tt["peak"] / 1024, "MiB", bare["peak"] / 1024,
            "bare keras-tuner peak", "", None, caveat.strip()),
    ]
