"""Backends and devices: a model trained under jax is served under the default backend; a
search streams a folder from disk with mixed precision and records device and precision; the
torch install searches and predicts wherever torch is installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from tunetrack import names
from tunetrack.cli import main

from .conftest import write_pipeline
from .imagefolders import make_image_folder

pytestmark = pytest.mark.slow

MLP = "family: mlp\ndense:\n  count: 1\n  units: {choice: [32]}\nlearning_rate: {choice: [0.01]}\n"


def _run(args):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


def _search_in(backend: str, pipeline: Path, workdir: Path) -> None:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "-q"],
                         env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def _trials(store, experiment: str):
    exp = store.get_experiment_by_name(experiment)
    runs = store.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]


def _promote_and_predict(store, workdir: Path, experiment: str) -> None:
    """Promote under this process's backend, then predict test digits written as PNGs."""
    from tunetrack.data import DataConfig, load_dataset

    promoted = _run(["promote", "--experiment", experiment, "--model-name", experiment])
    assert promoted.exit_code == 0, promoted.output
    version = store.get_model_version_by_alias(experiment, "champion")
    assert float(version.tags["tunetrack.test_accuracy"]) > 0.6
    dataset = load_dataset(DataConfig(source="digits", seed=0))
    folder = workdir / "pngs"
    folder.mkdir()
    for i in range(20):
        pixels = np.round(dataset.x_test[i, :, :, 0] * 255).astype("uint8")
        Image.fromarray(pixels, mode="L").save(folder / f"{i:02d}_{dataset.y_test[i]}.png")
    out = _run(["predict", f"models:/{experiment}@champion", str(folder), "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(StringIO(out.output))
    truth = rows["path"].map(lambda p: int(Path(p).stem.split("_")[1]))
    assert len(rows) == 20 and (rows["class"].astype(int) == truth).mean() >= 0.6


def test_trained_under_jax_served_under_default_backend(store, workdir: Path):
    """.keras is portable: the search trains under jax, promote and predict run here."""
    pytest.importorskip("jax")
    import keras

    pipeline = write_pipeline(workdir, space=MLP, trials=1, epochs=6, name="jaxmade")
    _search_in("jax", pipeline, workdir)
    (trial,) = _trials(store, "jaxmade")
    assert trial.data.tags[names.TAG_DEVICE].startswith("jax:cpu")
    assert trial.data.tags[names.TAG_PRECISION] == "float32"
    assert keras.backend.backend() != "jax"
    _promote_and_predict(store, workdir, "jaxmade")


@pytest.mark.core
def test_streamed_folder_with_mixed_precision(store, workdir: Path):
    """data.cache: disk feeds fit through a PyDataset; mixed precision and jit_compile are
    recorded on the search, the policy and device on each trial."""
    import keras

    make_image_folder(workdir / "imgs", {"beach": 10, "desert": 10}, sizes=((16, 16),))
    pipeline = write_pipeline(
        workdir, space=MLP, trials=1, epochs=2, name="streamed",
        extra="")
    text = pipeline.read_text().replace(
        "data: {source: digits, seed: 0}",
        "data: {source: imgs, seed: 0, image_size: [16, 16], cache: disk}").replace(
        "training: {epochs: 2, patience: 2}",
        "training: {epochs: 2, patience: 2, mixed_precision: true, jit_compile: false}")
    pipeline.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(["search", str(pipeline), "-q"])
    assert result.exit_code == 0, result.output
    # the endless training batches come shuffled: Keras is not handed shuffle=True to ignore
    assert not [w for w in caught if "shuffle" in str(w.message)], caught
    assert list((workdir / ".tunetrack" / "cache").glob("*-stream.u8"))
    (trial,) = _trials(store, "streamed")
    assert trial.data.tags[names.TAG_TRIAL_STATUS] == "completed"
    assert trial.data.tags[names.TAG_PRECISION] == "mixed_bfloat16"  # no GPU here
    assert trial.data.tags[names.TAG_DEVICE] == f"{keras.backend.backend()}:cpu:0"
    assert "best_val_accuracy" in trial.data.metrics
    search = store.get_run(trial.data.tags[names.TAG_PARENT])
    assert search.data.params["training.mixed_precision"] == "True"
    assert search.data.params["training.jit_compile"] == "False"
    assert search.data.params["data.cache"] == "disk"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch not installed (pip install 'tunetrack[torch]'; CI skips it: "
                           "PyPI's torch wheel pulls gigabytes of CUDA libraries)")
def test_torch_backend_search_and_predict(store, workdir: Path):
    pipeline = write_pipeline(workdir, space=MLP, trials=1, epochs=6, name="torchmade")
    _search_in("torch", pipeline, workdir)
    (trial,) = _trials(store, "torchmade")
    assert trial.data.tags[names.TAG_DEVICE].startswith("torch:")
    _promote_and_predict(store, workdir, "torchmade")
