"""GPU-ready: a CIFAR-sized search under jax on the GPU, next to the same search on the CPU.

A generated 32x32x3 set (10 classes, learnable colour/texture patterns) stands in for
``keras:cifar10`` (no download); each device runs the same random search in its own
interpreter under ``KERAS_BACKEND=jax`` (``JAX_PLATFORMS=cpu`` for the CPU row). Figures:
training images/s (epochs after each trial's first), trials/min, and the GPU's mean utilisation
sampled with ``nvidia-smi`` while the search runs. ``make bench-gpu`` runs the full size; on a
machine without a GPU only the CPU figures are written. The tests run the smoke size
in-process on whatever backend they use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import Row, call, check_size, store_uri, tmp_root

NAME = "gpu"
# images (train + validation pool), trials, epochs
SIZES = {"smoke": (400, 1, 1), "quick": (6000, 2, 2), "full": (50000, 4, 3)}
SPACE = """\
family: cnn
blocks:
  count: 2
  filters: {choice: [16, 32]}
  kernel_size: 3
  padding: same
  pooling: max
dense:
  count: 1
  units: 64
learning_rate: {float: [1.0e-3, 3.0e-3], log: true}
batch_size: 256
optimizer: adam
"""


def generated(n: int, seed: int = 0) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """CIFAR-shaped uint8 arrays: (x_train, y_train), (x_test, y_test) with n and n // 5."""
    import numpy as np

    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, (10, 3))

    def part(m: int) -> tuple[Any, Any]:
        y = np.arange(m) % 10
        stripes = (np.arange(32)[None, :, None] % (2 + y[:, None, None] % 4) == 0)
        x = colours[y][:, None, None, :] * (0.6 + 0.4 * stripes[..., None])
        x = x + rng.normal(0, 25, (m, 32, 32, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.reshape(-1, 1).astype(np.uint8)

    return part(n), part(max(10, n // 5))


def gpu_names() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] \
        if out.returncode == 0 else []


class Utilisation:
    """Mean GPU utilisation (%) sampled every 0.5 s by ``nvidia-smi`` in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))
            self._stop.wait(0.5)

    def __enter__(self) -> Utilisation:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """One search on the generated set; rates and the devices Keras trained on."""
    import keras

    from tunetrack.data import _sources
    from tunetrack.models import device_tag
    from tunetrack.names import TrialStatus
    from tunetrack.search.progress import Reporter
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    data = generated(payload["images"])
    _sources.keras_loader = lambda name: data  # stands in for keras:cifar10, no download
    (Path.cwd() / "gpu_space.yaml").write_text(SPACE)
    path = Path.cwd() / "gpu.yaml"
    path.write_text(f"""\
name: gpu
experiment: bench-gpu-{payload['device']}
space: gpu_space.yaml
data: {{source: "keras:cifar10", seed: 0}}
tuner: {{kind: random, max_trials: {payload['trials']}, seed: 3}}
training: {{epochs: {payload['epochs']}, patience: null, mixed_precision: {payload['mixed']}}}
""")
    pipeline = load_pipeline(path)
    steady: list[tuple[float, int]] = []  # (seconds, epochs) after each trial's first epoch
    ends: list[float] = []
    done: list[bool] = []

    class Clock(Reporter):
        def trial_started(self, **kwargs: Any) -> None:
            ends.clear()

        def epoch_ended(self, *, epoch: int, epochs: int, logs: dict[str, float]) -> None:
            ends.append(time.perf_counter())

        def trial_ended(self, record: Any, *, best: Any, elapsed: float) -> None:
            done.append(record.status is TrialStatus.COMPLETED)
            if len(ends) > 1:
                steady.append((ends[-1] - ends[0], len(ends) - 1))

    train = round(payload["images"] * 0.8)  # validation_split 0.2 of the training set
    t0 = time.perf_counter()
    with Utilisation() as util:
        run_search(pipeline, reporter=Clock())
    wall = time.perf_counter() - t0
    seconds, epochs = sum(s for s, _ in steady), sum(e for _, e in steady)
    return {"images_per_s": train * epochs / seconds if seconds else 0.0,
            "trials_per_min": 60 * sum(done) / wall, "utilisation": util.mean,
            "device": device_tag(), "backend": keras.backend.backend(), "completed": sum(done)}


def run(size: str) -> list[Row]:
    check_size(size)
    images, trials, epochs = SIZES[size]
    root = tmp_root(NAME)
    smoke = size == "smoke"
    gpus = gpu_names()
    env = {"MLFLOW_TRACKING_URI": store_uri(root / "store"), "KERAS_BACKEND": "jax"}
    payload = {"images": images, "trials": trials, "epochs": epochs, "mixed": "false"}
    got: dict[str, dict[str, Any]] = {}
    try:
        got["cpu"] = call(f"{__name__}:worker", {**payload, "device": "cpu"},
                          folder=root / "cpu", env=env | {"JAX_PLATFORMS": "cpu"},
                          in_process=smoke)
        if gpus and not smoke:
            got["gpu"] = call(f"{__name__}:worker", {**payload, "device": "gpu"},
                              folder=root / "gpu", env=env)
            got["gpu-mixed"] = call(f"{__name__}:worker",
                                    {**payload, "device": "gpu", "mixed": "true"},
                                    folder=root / "gpu-mixed", env=env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    caveat = " (smoke: in-process on the tests' backend)" if smoke else ""
    what = (f"{images} generated 32x32x3 images, {trials} trials x {epochs} epochs, CNN "
            f"16-32 filters, batch 256")
    cpu = got["cpu"]
    rows = [Row(NAME, "CPU images/s", cpu["images_per_s"], "img/s", None, "", "", None,
                f"{what}; {cpu['device']}; {cpu['trials_per_min']:.2f} trials/min{caveat}")]
    if "gpu" not in got:
        rows[0].note += (f"; no GPU here ({os.cpu_count()} CPUs): run `make bench-gpu` on a "
                         f"GPU machine for the GPU rows")
        return rows
    for key, label in (("gpu", "float32"), ("gpu-mixed", "mixed_float16")):
        g = got[key]
        util = "-" if g["utilisation"] is None else f"{g['utilisation']:.0f}%"
        rows.append(Row(NAME, f"GPU images/s ({label})", g["images_per_s"], "img/s",
                        cpu["images_per_s"], "CPU images/s", "", None,
                        f"{', '.join(gpus)}; {g['device']}; {g['trials_per_min']:.2f} "
                        f"trials/min (CPU {cpu['trials_per_min']:.2f}); mean GPU "
                        f"utilisation {util}"))
    return rows
