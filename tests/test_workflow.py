"""The user's whole path through the CLI: search -> compare -> promote -> predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from tunetrack.cli import main

from .conftest import write_pipeline

pytestmark = pytest.mark.slow

MLP_SPACE = """\
family: mlp
dense:
  count: 1
  units: {choice: [32, 64]}
learning_rate: {choice: [0.01, 0.003]}
"""


def _run(args):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


@pytest.mark.core  # the quick start: also run in the TF-free .venv-jax by `make test`
def test_search_compare_promote_predict(store, workdir: Path, monkeypatch):
    import mlflow

    from tunetrack.data import DataConfig, load_dataset

    pipeline = write_pipeline(workdir, space=MLP_SPACE, trials=2, epochs=8, name="flow")
    result = _run(["search", str(pipeline), "-q"])
    assert result.exit_code == 0, result.output
    assert "search finished" in result.output and "2 trained" in result.output

    table = _run(["compare", "--experiment", "flow", "--format", "csv"])
    assert table.exit_code == 0, table.output
    from io import StringIO

    frame = pd.read_csv(StringIO(table.output))
    assert len(frame) == 2
    assert list(frame["val_accuracy"]) == sorted(frame["val_accuracy"], reverse=True)

    promoted = _run(["promote", "--experiment", "flow", "--model-name", "digits-flow"])
    assert promoted.exit_code == 0, promoted.output
    assert "is now 'champion'" in promoted.output
    version = store.get_model_version_by_alias("digits-flow", "champion")
    assert float(version.tags["tunetrack.test_accuracy"]) > 0.8

    # raw PNGs of sealed test digits, written as 8-bit grayscale, predict their labels
    dataset = load_dataset(DataConfig(source="digits", seed=0))
    folder = workdir / "pngs"
    folder.mkdir()
    for i in range(20):
        pixels = np.round(dataset.x_test[i, :, :, 0] * 255).astype("uint8")
        Image.fromarray(pixels, mode="L").save(folder / f"{i:02d}_{dataset.y_test[i]}.png")
    out = _run(["predict", "models:/digits-flow@champion", str(folder), "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(StringIO(out.output))
    assert list(rows.columns) == ["path", "class", "probability"]
    assert len(rows) == 20
    truth = rows["path"].map(lambda p: int(Path(p).stem.split("_")[1]))
    assert (rows["class"].astype(int) == truth).mean() >= 0.8
    # the registered pyfunc, loaded by MLflow alone, answers exactly as the CLI did (it reads
    # file paths only inside the folder $TUNETRACK_ALLOW_PATHS names, as a server would)
    monkeypatch.setenv("TUNETRACK_ALLOW_PATHS", str(folder))
    loaded = mlflow.pyfunc.load_model("models:/digits-flow@champion")
    served = loaded.predict(pd.DataFrame({"image": list(rows["path"])}))
    assert list(served.columns) == ["class", "probability"]
    assert list(served["class"]) == list(rows["class"].astype(str))
    np.testing.assert_allclose(served["probability"], rows["probability"], atol=1e-5)

    # a gate above any real accuracy refuses with exit 1: the new version is only the
    # challenger, and the champion stays where it was
    refused = _run(["promote", "--experiment", "flow", "--model-name", "digits-flow",
                    "--min-test-accuracy", "1.0"])
    assert refused.exit_code == 1
    assert "is below min_test_accuracy 1.0000" in refused.output
    assert "has alias 'challenger'" in refused.output
    assert store.get_model_version_by_alias("digits-flow", "champion").version == version.version
    assert store.get_model_version_by_alias("digits-flow", "challenger").version != \
        version.version
