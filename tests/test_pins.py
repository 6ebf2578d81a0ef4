"""``--set KEY=VALUE``: pinning hyperparameters of a search, and what ``plan`` says it used."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack import names
from tunetrack.cli import main
from tunetrack.errors import SpaceError
from tunetrack.space.language import load_space

from .conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
family: vgg
blocks:
  count: {int: [1, 3], default: 2}
  filters: {start: {choice: [8, 16]}, grow: 2}
  convs: {int: [1, 2]}
dense:
  count: 1
  units: [{choice: [8, 16]}]
dropout: {choice: [0.0, 0.5]}
activation: {choice: [relu, tanh]}
"""


@pytest.fixture
def space(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return load_space(path)


def test_a_pinned_key_is_no_longer_searched(space):
    assert {"dropout", "blocks", "blocks.filters.start"} <= set(space.searched())
    pinned = space.pinned({"dropout": "0.5", "blocks": "3", "blocks.filters.start": "16"})
    assert not {"dropout", "blocks", "blocks.filters.start"} & set(pinned.searched())
    assert pinned.pins == {"dropout": "0.5", "blocks": "3", "blocks.filters.start": "16"}
    rng = random.Random(0)
    for _ in range(20):
        cand = pinned.sample(rng)
        assert (cand["dropout"], cand["blocks"]) == (0.5, 3)
        assert [cand[f"blocks.{i}.filters"] for i in (1, 2, 3)] == [16, 32, 64]


def test_an_element_is_pinned_whenever_it_is_active(space):
    pinned = space.pinned({"blocks.3.convs": "1", "dense.1.units": "16"})
    assert "blocks.3.convs" not in pinned.searched()
    assert "blocks.2.convs" in pinned.searched()
    rng = random.Random(1)
    seen = [pinned.sample(rng) for _ in range(30)]
    assert {c["blocks.3.convs"] for c in seen if c["blocks"] == 3} == {1}
    assert all(c["dense.1.units"] == 16 for c in seen)
    assert {c["blocks"] for c in seen} == {1, 2, 3}  # the count is still searched


@pytest.mark.parametrize("assignment, message", [
    ({"dropout": "0.25"}, r"--set: dropout: 0.25 is not in the space, which allows one of "
                          r"0.0, 0.5"),
    ({"blocks": "4"}, r"blocks: 4 is not in the space, which allows an int from 1 to 3"),
    ({"blocks.2.filters": "32"}, r"blocks.2.filters follows the growth rule blocks.filters "
                                 r".*; set blocks.filters.start=\.\.\. instead"),
    ({"dense.1.activation": "tanh"}, r"dense.1.activation follows 'activation' in this space"),
    ({"widht": "0.5"}, r"unknown hyperparameter 'widht' \(did you mean 'width'\?\)"),
])
def test_a_bad_pin_names_the_key_and_the_rule(space, assignment, message):
    with pytest.raises(SpaceError, match=message):
        space.pinned(assignment)


def test_plan_header_says_where_the_input_and_values_came_from():
    runner = CliRunner()
    preset = ROOT / "search_spaces" / "presets" / "resnet18.yaml"
    out = runner.invoke(main, ["plan", str(preset)])
    assert out.exit_code == 0, out.output
    first = out.output.splitlines()[0]
    assert first.endswith("family resnet, input 224×224×3 (the space file), 1000 classes "
                          "(the space file)")
    assert "trainable params:     11,689,512" in out.output
    out = runner.invoke(main, ["plan", str(ROOT / "search_spaces" / "digits_cnn.yaml"),
                               "--set", "blocks=1", "--input-shape", "8,8,1"])
    lines = out.output.splitlines()
    assert lines[0].endswith("input 8×8×1 (--input-shape), 10 classes (default)")
    assert lines[1] == "pinned by --set: blocks=1"
    assert lines[3].startswith("candidate of the defaults: batch_size=32 ")
    assert "blocks=" not in lines[3]  # pinned values are not listed as defaults


def test_worker_command_passes_the_pins_on(workdir: Path):
    from tunetrack.search.workers import worker_command
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(write_pipeline(workdir)).override(
        pins=(("blocks", "1"), ("learning_rate", "0.01")))
    command = worker_command(pipeline)
    assert command[-4:] == ["--set", "blocks=1", "--set", "learning_rate=0.01"]


def test_pins_are_part_of_the_search_key(workdir: Path):
    from tunetrack.search.resume import search_key
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(write_pipeline(workdir))
    plain = search_key(pipeline)
    assert search_key(pipeline.override(pins=(("blocks", "1"),))) != plain
    assert search_key(pipeline.override()) == plain


@pytest.mark.slow
def test_search_set_trains_only_the_pinned_values(store, workdir: Path):
    pipeline = write_pipeline(workdir, trials=2, epochs=1)
    out = CliRunner().invoke(main, ["search", str(pipeline), "-q", "--set", "blocks=1",
                                    "--set", "blocks.1.filters=4"])
    assert out.exit_code == 0, out.output
    exp = store.get_experiment_by_name("tiny")
    runs = store.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
    assert len(trials) == 2
    assert {(r.data.params["blocks"], r.data.params["blocks.1.filters"]) for r in trials} \
        == {("1", "4")}
    parent = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH)
    assert parent.data.params["pinned"] == "blocks=1 blocks.1.filters=4"
