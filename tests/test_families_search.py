"""Every family searched end to end on a folder of images it has never seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack import names
from tunetrack.cli import main

from .conftest import ROOT
from .imagefolders import make_image_folder

pytestmark = pytest.mark.slow

FAMILIES = ["linear", "softmax", "mlp", "cnn", "vgg", "resnet", "colour", "hog", "lbp"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("beach_desert")
    return make_image_folder(root, classes={"beach": 10, "desert": 10},
                             sizes=[(40, 30), (24, 24), (64, 48)])


@pytest.mark.parametrize("family", FAMILIES)
def test_family_searches_an_image_folder(family: str, folder: Path, store):
    result = CliRunner().invoke(main, [
        "search", str(ROOT / "pipelines" / f"{family}.yaml"), "--data", str(folder),
        "--max-trials", "1", "--epochs", "1", "--experiment", f"f-{family}", "-q"],
        prog_name="tunetrack")
    assert result.exit_code == 0, result.output
    assert "1 trained" in result.output
    experiment = store.get_experiment_by_name(f"f-{family}")
    runs = store.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == "trial"
              and r.data.tags[names.TAG_TRIAL_STATUS] == "completed"]
    assert len(trials) == 1
    assert trials[0].data.tags[names.TAG_FAMILY] == family
    search = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == "search")
    assert search.data.params["data.num_classes"] == "2"
    assert search.data.tags[names.TAG_CLASSES] == '["beach", "desert"]'
