"""Data larger than memory: peak RSS of a one-trial search on folders of N and 4N images.

Generated folders of RGB 128x128 JPEGs (4 classes). Each variant runs in its own interpreter:
``stream`` (``data.cache: disk``: decoded once to a uint8 file, batches read through a
``keras.utils.PyDataset``) at N and 4N, ``memory`` (today's float32 arrays) at N and 4N, and the
anchor, keras's ``image_dataset_from_directory`` iterated once over the 4N folder with no model
at all. Goals: streaming's peak RSS at 4N <= 1.1x its peak at N, and its training images/s
(steady epochs, after the first) within 10 % of the in-memory path on the N folder, which fits.

Images/s is the training split over the median time between two epochs' ends (the first epoch,
which compiles, left out), so one epoch slowed by another job on a shared machine does not
decide it; on the N folder stream and memory each run twice, interleaved (stream, memory,
memory, stream), and the faster run of each counts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks import Row, call, check_size, rss_kib, store_uri, tmp_root

NAME = "data"
RSS_GOAL, SPEED_GOAL = 1.10, 0.90
# images in the small folder (N), image side, epochs
SIZES = {"smoke": (24, 32, 2), "quick": (500, 128, 5), "full": (1000, 128, 5)}
CLASSES = ("alpha", "beta", "gamma", "delta")
SPACE = """\
family: cnn
blocks:
  count: 1
  filters: 4
  kernel_size: 3
  stride: 2
  padding: same
  pooling: max
dense:
  count: 0
learning_rate: 1.0e-3
batch_size: 64
optimizer: adam
"""


def make_folder(root: Path, count: int, side: int, seed: int = 0) -> Path:
    """``count`` RGB JPEGs split over :data:`CLASSES`: a class colour, a gradient, noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, side)[None, :, None]
    for i in range(count):
        label = i % len(CLASSES)
        colour = np.array([(60, 120, 200), (200, 90, 40), (40, 180, 90), (180, 180, 40)][label])
        img = colour * (0.5 + 0.5 * ramp) + rng.normal(0, 20, (side, side, 3))
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(folder / f"{i:06d}.jpg",
                                                                    quality=90)
    return root


def write_pipeline(folder: Path, data: Path, side: int, cache: str, epochs: int) -> Path:
    (folder / "data_space.yaml").write_text(SPACE)
    path = folder / "data.yaml"
    path.write_text(f"""\
name: data
experiment: bench-data
space: data_space.yaml
data: {{source: {data}, image_size: [{side}, {side}], cache: {cache}, seed: 0}}
tuner: {{kind: random, max_trials: 1, seed: 3}}
training: {{epochs: {epochs}, patience: null}}
""")
    return path


def search_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """One trial; peak RSS (KiB) and steady-epoch training images per second."""
    import numpy as np

    from tunetrack.names import TrialStatus
    from tunetrack.search.progress import Reporter
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(write_pipeline(Path.cwd(), Path(payload["data"]), payload["side"],
                                            payload["cache"], payload["epochs"]))
    ends: list[float] = []
    done: list[Any] = []

    class Clock(Reporter):
        def epoch_ended(self, *, epoch: int, epochs: int, logs: dict[str, float]) -> None:
            ends.append(time.perf_counter())

        def trial_ended(self, record: Any, *, best: Any, elapsed: float) -> None:
            done.append(record.status is TrialStatus.COMPLETED)

    run_search(pipeline, reporter=Clock())
    train = len(_train_split(pipeline.data))
    steady = train / float(np.median(np.diff(ends))) if len(ends) > 1 else 0.0
    return {"peak": rss_kib()[1], "images_per_s": steady, "completed": all(done) and bool(done),
            "epoch_seconds": [round(float(t), 3) for t in np.diff(ends)]}


def _train_split(cfg: Any) -> Any:
    """The training indices the search used (labels only, nothing decoded)."""
    from tunetrack.data._folders import list_folder
    from tunetrack.data._splits import split

    classes, _, labels = list_folder(Path(cfg.source))
    return split(labels, classes, cfg.test_split, cfg.validation_split, cfg.seed)[0]


def anchor_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """keras's own folder loader alone (tf.data under TensorFlow): one pass, no model."""
    import keras

    ds = keras.utils.image_dataset_from_directory(payload["data"], image_size=(
        payload["side"], payload["side"]), batch_size=64, seed=0, verbose=False)
    t0, n = time.perf_counter(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return {"peak": rss_kib()[1], "images_per_s": n / (time.perf_counter() - t0)}


def run(size: str) -> list[Row]:
    check_size(size)
    n, side, epochs = SIZES[size]
    root = tmp_root(NAME)
    smoke = size == "smoke"
    env = {"MLFLOW_TRACKING_URI": store_uri(root / "store")}
    got: dict[str, dict[str, Any]] = {}
    try:
        folders = {k: make_folder(root / f"images-{k}", k * n, side) for k in (1, 4)}
        # the N pair twice, interleaved, so a burst of load hits both paths alike
        order = [("disk", 1, ""), ("memory", 1, ""), ("memory", 1, "b"), ("disk", 1, "b"),
                 ("disk", 4, ""), ("memory", 4, "")]
        for cache, k, again in order[:4] if smoke else order:
            got[f"{cache}-{k}{again}"] = call(
                f"{__name__}:search_worker",
                {"data": str(folders[k]), "side": side, "cache": cache, "epochs": epochs},
                folder=root / f"{cache}-{k}{again}", env=env, in_process=smoke)
        if smoke:
            got["disk-4"], got["memory-4"] = got["disk-1b"], got["memory-1b"]
        got["anchor"] = call(f"{__name__}:anchor_worker", {"data": str(folders[4]), "side": side},
                             folder=root / "anchor", env=env, in_process=smoke)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    caveat = " (smoke: in-process, figures meaningless)" if smoke else ""
    mib = {k: v["peak"] / 1024 for k, v in got.items()}
    growth = mib["disk-4"] / mib["disk-1"]

    def best(cache: str) -> float:
        return max(got[f"{cache}-1"]["images_per_s"], got[f"{cache}-1b"]["images_per_s"])

    speed = best("disk") / best("memory")
    runs = {k: round(got[k]["images_per_s"])
            for k in ("disk-1", "memory-1", "memory-1b", "disk-1b")}
    what = f"N={n}, {side}x{side} RGB JPEGs, 1 trial x {epochs} epochs, tiny CNN"
    return [
        Row(NAME, "stream peak RSS at 4N", mib["disk-4"], "MiB", mib["disk-1"],
            "stream peak RSS at N", f"<= {RSS_GOAL}x", growth <= RSS_GOAL,
            f"{what}; in-memory path: {mib['memory-1']:.0f} MiB at N, {mib['memory-4']:.0f} MiB "
            f"at 4N; keras image_dataset_from_directory alone over 4N: {mib['anchor']:.0f} MiB"
            f"{caveat}"),
        Row(NAME, "stream images/s at N", best("disk"), "img/s", best("memory"),
            "in-memory images/s at N", f">= {SPEED_GOAL}x", speed >= SPEED_GOAL,
            f"training images over the median epoch after the first, the faster of 2 runs "
            f"each (in order {runs}); at 4N: stream {got['disk-4']['images_per_s']:.0f}, memory "
            f"{got['memory-4']['images_per_s']:.0f}{caveat}"),
        Row(NAME, "anchor peak RSS at 4N", mib["anchor"], "MiB", None, "", "", None,
            f"keras image_dataset_from_directory, one pass, no model{caveat}"),
    ]
