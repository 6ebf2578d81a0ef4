"""The [jax] and [torch] installs have no TensorFlow, and tunetrack never needs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.core
ROOT = Path(__file__).resolve().parents[1]


def test_tensorflow_is_absent_in_the_jax_environment():
    """`make test` runs the core tests again in .venv-jax (pip install -e '.[jax,test]')."""
    if os.environ.get("TUNETRACK_EXPECT_NO_TF") != "1":
        pytest.skip("only in the TF-free environment (make test-jax sets TUNETRACK_EXPECT_NO_TF)")
    assert importlib.util.find_spec("tensorflow") is None
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
    import keras

    assert keras.backend.backend() == "jax"


def test_only_the_tensorflow_extra_pins_tensorflow():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = ("tensorflow", "tensorboard", "jax", "torch")
    assert not [d for d in project["dependencies"] if d.startswith(heavy)]
    assert "six" in " ".join(project["dependencies"])  # keras-tuner imports it; TF brought it
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["tensorflow"]] == ["tensorflow", "tensorboard"]
    assert extras["jax"][0].startswith("jax[cpu]") and extras["torch"][0].startswith("torch")
    for name in ("jax", "torch", "test"):
        assert not [d for d in extras[name] if d.startswith(("tensorflow", "tensorboard"))]


def test_search_code_imports_and_serves_an_oracle_without_tensorflow():
    """With ``import tensorflow`` made to fail, every layer imports, keras-tuner's gRPC oracle
    (parallel workers) starts, and the per-trial memory release is a no-op."""
    code = """
import sys
sys.modules["tensorflow"] = None  # any 'import tensorflow' now raises ImportError
import keras, keras_tuner
import tunetrack.cli, tunetrack.search.session, tunetrack.search.workers, tunetrack.registry
import tunetrack.tracking.artifacts, tunetrack.data, tunetrack.models
from tunetrack.search import _keras_tuner as kt
oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
server, servicer, port = kt.serve_oracle(oracle, "127.0.0.1:0")
server.stop(0)
assert port > 0 and kt.release_trial_graphs(set()) == 0 and kt.custom_gradient_names() == set()
from tunetrack.models import device_tag
print("ok", keras.backend.backend(), device_tag())
"""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[:3] == ["ok", "jax", "jax:cpu:0"]
