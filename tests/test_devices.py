"""Devices: --gpus-per-worker pins local workers through CUDA_VISIBLE_DEVICES; the device and
precision helpers say what Keras trains on."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack.cli import main
from tunetrack.errors import ConfigError
from tunetrack.search import workers
from tunetrack.search.devices import worker_gpus

from .conftest import write_pipeline


def test_worker_gpus_groups_round_robin():
    gpus = ["0", "1", "2", "3"]
    assert [worker_gpus(gpus, i, 1) for i in range(5)] == [["0"], ["1"], ["2"], ["3"], ["0"]]
    assert [worker_gpus(gpus, i, 2) for i in range(3)] == [["0", "1"], ["2", "3"], ["0", "1"]]
    assert worker_gpus(gpus, 0, 3) == ["0", "1", "2"] and worker_gpus(gpus, 1, 3) == ["0", "1", "2"]
    assert worker_gpus(["5"], 0, 1) == ["5"]  # asked for: pinned even with one GPU
    assert worker_gpus(["0", "1"], 1, None) == ["1"] and worker_gpus(["0"], 0, None) is None
    with pytest.raises(ConfigError, match=r"--gpus-per-worker: each worker asks for 2 GPU\(s\) "
                                          r"but 1 is visible \(7\)"):
        worker_gpus(["7"], 0, 2)


def test_worker_env_pins_its_gpus():
    env = workers.worker_env(1, ("h", 1), "r", "u", 2, ["0", "1", "2", "3"], 2)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_cli_refuses_more_gpus_than_visible(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pipeline = write_pipeline(workdir, trials=1, epochs=1)
    out = CliRunner().invoke(main, ["search", str(pipeline), "--workers", "2",
                                    "--gpus-per-worker", "1"], prog_name="tunetrack")
    assert out.exit_code == 2, out.output
    assert "--gpus-per-worker: each worker asks for 1 GPU(s) but 0 are visible" in out.output


def test_device_and_precision_helpers():
    import keras

    from tunetrack import models

    assert models.devices() == ["cpu:0"]  # no GPU on the machines the tests run on
    assert models.device_tag() == f"{keras.backend.backend()}:cpu:0"
    assert models.precision_policy(False) == "float32"
    assert models.precision_policy(True) == "mixed_bfloat16"
    assert models.compile_options(None) == {} and models.compile_options(True) == \
        {"jit_compile": True}
    with models.dtype_policy("mixed_bfloat16"):
        layer = keras.layers.Dense(2)
    assert layer.dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
