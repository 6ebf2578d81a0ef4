"""The course's architectures as shipped files: each preset plans to its published parameter
count, equals its built Keras model, and each searchable variant starts from its preset and
runs a search."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack import names
from tunetrack.cli import main
from tunetrack.errors import CandidateRejected, SpaceError
from tunetrack.space import catalog, load_pipeline, load_space, plan_candidate

from .conftest import ROOT
from .imagefolders import make_image_folder

PRESETS = ROOT / "search_spaces" / "presets"


# name: (published input shape, classes, trainable, non-trainable (batch-norm statistics))
PUBLISHED = {
    "lenet5": ((32, 32, 1), 10, 61_706, 0),
    "alexnet": ((227, 227, 3), 1000, 61_100_840, 0),
    "vgg16": ((224, 224, 3), 1000, 138_357_544, 0),
    "vgg19": ((224, 224, 3), 1000, 143_667_240, 0),
    "resnet18": ((224, 224, 3), 1000, 11_689_512, 9_600),
    "resnet34": ((224, 224, 3), 1000, 21_797_672, 17_024),
    "googlenet": ((224, 224, 3), 1000, 6_624_904, 14_560),
}


def preset(name: str) -> Path:
    return PRESETS / f"{name}.yaml"


def variant(name: str) -> Path:
    return ROOT / "search_spaces" / f"{name}_search.yaml"


def pipeline(name: str) -> Path:
    return ROOT / "pipelines" / f"{name}_search.yaml"


def shape_arg(shape: tuple[int, ...]) -> str:
    return ",".join(map(str, shape))


def _run(args: list[str]):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


def test_every_preset_has_a_variant_and_a_pipeline() -> None:
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(PUBLISHED)
    for name in PUBLISHED:
        assert variant(name).is_file() and pipeline(name).is_file(), name


# -- the published counts ----------------------------------------------------------------------
@pytest.mark.parametrize("name", PUBLISHED)
def test_plan_prints_the_published_count(name: str) -> None:
    shape, classes, trainable, frozen = PUBLISHED[name]
    result = _run(["plan", str(preset(name)), "--input-shape", shape_arg(shape),
                   "--classes", str(classes)])
    assert result.exit_code == 0, result.output
    assert re.search(rf"^trainable params:\s+{trainable:,}$", result.output, re.M), result.output
    assert re.search(rf"^non-trainable params:\s+{frozen:,}$", result.output, re.M)
    assert re.search(rf"^total params:\s+{trainable + frozen:,}$", result.output, re.M)


def test_googlenet_with_its_auxiliary_classifiers_has_torchvisions_count() -> None:
    """After modules 4a and 4d, as torchvision's googlenet(aux_logits=True): 13,004,888."""
    result = _run(["plan", str(preset("googlenet")), "--set", "modules.3.aux=true",
                   "--set", "modules.6.aux=true"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^trainable params:\s+13,004,888$", result.output, re.M), result.output
    assert re.search(r"^modules.3.aux.output +dense +1000 +1,025,000$", result.output, re.M)


# -- each searchable variant starts from its preset --------------------------------------------
TRAINING_KEYS = set(catalog.TRAINING)


def network_defaults(path: Path) -> dict:
    """The default candidate less the training keys (a variant may search other ones) and the
    searched start of a growth rule (a variant may write the same filters as a list)."""
    return {k: v for k, v in load_space(path).defaults().items()
            if k not in TRAINING_KEYS and not k.endswith(".start")}


@pytest.mark.parametrize("name", PUBLISHED)
def test_variant_default_is_the_preset(name: str) -> None:
    space = load_space(variant(name))
    assert space.family == load_space(preset(name)).family
    assert space.searched(), "a variant searches something"
    assert network_defaults(variant(name)) == network_defaults(preset(name))
    shape, classes, trainable, frozen = PUBLISHED[name]
    plan = plan_candidate(space.family, space.defaults(), shape, classes)
    assert (plan.trainable_params, plan.total_params - plan.trainable_params) == (
        trainable, frozen)


def pipeline_shape(name: str) -> tuple[int, int, int]:
    data = load_pipeline(pipeline(name)).data
    return (*data.image_size, 1 if data.color_mode == "grayscale" else 3)


@pytest.mark.parametrize("name", PUBLISHED)
def test_variant_plans_at_its_pipelines_image_size(name: str) -> None:
    """The default candidate (the preset's network) and sampled ones fit the pipeline's images."""
    assert Path(load_pipeline(pipeline(name)).space).resolve() == variant(name).resolve()
    space, shape = load_space(variant(name)), pipeline_shape(name)
    plan = plan_candidate(space.family, space.defaults(), shape, 3)
    print(f"{name} default at {shape_arg(shape)}: {plan.trainable_params:,} trainable")
    rng = random.Random(0)
    for _ in range(50):  # what the search draws fits too: no width or depth makes a map vanish
        plan_candidate(space.family, space.sample(rng), shape, 3)


# -- plan == Keras ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLISHED)
def test_preset_plan_equals_built_keras_model(name: str) -> None:
    """At the published size (VGG-19 is ~143M parameters, ~600 MB; all seven build in ~10 s on
    two cores), layer by layer."""
    keras = pytest.importorskip("keras")
    from tunetrack.models import build_model

    from .test_families import assert_model_matches_plan

    space = load_space(preset(name))
    shape, classes = PUBLISHED[name][:2]
    plan = plan_candidate(space.family, space.defaults(), shape, classes)
    keras.backend.clear_session()
    try:
        assert_model_matches_plan(build_model(space.family, space.defaults(), shape, classes),
                                  plan)
    finally:
        keras.backend.clear_session()


# -- planning is pure and fast ----------------------------------------------------------------
def test_planning_presets_imports_no_heavy_package() -> None:
    """``tunetrack plan`` of every preset, in a fresh interpreter: nothing heavy is imported.
    Prints each preset's planning time (the 0.5 s goal is checked in benchmarks/)."""
    calls = {name: ["plan", str(preset(name)), "--input-shape", shape_arg(shape),
                    "--classes", str(classes)]
             for name, (shape, classes, _, _) in PUBLISHED.items()}
    code = textwrap.dedent(f"""\
        import json, sys, time
        from click.testing import CliRunner
        from tunetrack.cli import main
        times = {{}}
        for name, args in {calls!r}.items():
            start = time.perf_counter()
            result = CliRunner().invoke(main, args)
            times[name] = time.perf_counter() - start
            assert result.exit_code == 0, result.output
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in
                       ('tensorflow', 'keras', 'keras_tuner', 'mlflow', 'jax', 'torch'))
        print(json.dumps({{"heavy": heavy, "times": times}}))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["heavy"] == []
    for name, seconds in report["times"].items():
        print(f"plan {name}: {seconds * 1000:.0f} ms")


# -- bad input --------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text, message", [
    ("family: cnn\nblocks:\n  count: 3\n  filters: [8, 16]\n",
     ":4: blocks.filters: a list of 2 entries, but blocks.count is 3: give one entry per "
     "element"),
    ("family: cnn\nblocks:\n  count: {int: [1, 3]}\n  filters: [8, 16]\n",
     ":4: blocks.filters: a list of 2 entries, but blocks.count can be 3: give an entry for "
     "every element up to the largest count"),
    ("family: vgg\nblocks:\n  filters: [8, 16]\n  convs: [2, 2, 3]\n",
     ":2: blocks.count: the lists of group 'blocks' disagree on its number of elements: "
     "filters has 2, convs has 3; make them equal or write count"),
    ("family: vgg\nblocks:\n  filters:\n    - 8\n    - 1.5\n",
     ":5: blocks.2.filters: expected an int, but got 1.5"),
    ("family: resnet\nblocks:\n  repeat: [2, two]\n",
     ":3: blocks.2.repeat: expected an int, but got 'two'"),
    ("family: resnet\nblocks:\n  filters:\n    start: 8\n    grow: 0\n",
     ":5: blocks.filters: grow must be a number > 0 (2 doubles at each element), but got 0"),
    ("family: vgg\nblocks:\n  filters:\n    start: 8\n    grow: -2\n",
     ":5: blocks.filters: grow must be a number > 0 (2 doubles at each element), but got -2"),
])
def test_bad_lists_and_growth_rules(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpaceError, match=re.escape(f"{path}{message}")):
        load_space(path)


def vanishes(layer: str, side: int, window: int, stride: int, result: str) -> str:
    return (f"{layer}: ({side} + 2·0 − {window})/{stride} + 1 = {result} is smaller than 1 "
            f"(the window {window} does not fit in the input {side} + 2·0)")


@pytest.mark.parametrize("text, shape, reason", [
    ("family: resnet\nstem: {kernel_size: 7, stride: 2, padding: valid}\n", (5, 5, 1),
     vanishes("stem.1 conv", 5, 7, 2, "0")),
    ("family: vgg\nstem: {kernel_size: 3, padding: valid, pooling: max, pool_size: 3, "
     "pool_stride: 2}\n", (4, 4, 3), vanishes("stem.1 pool", 2, 3, 2, "0.5")),
    ("family: cnn\nblocks: {filters: [4, 4, 4], pooling: max}\n", (4, 4, 1),
     vanishes("blocks.3 pool", 1, 2, 2, "0.5")),
    ("family: cnn\nblocks: {filters: [4, 4, 4], pooling: max}\n", (8, 4, 1),
     vanishes("blocks.3 pool (width)", 1, 2, 2, "0.5")),
    ("family: cnn\nblocks: {filters: [6, 16, 32], kernel_size: 5, padding: valid}\n",
     (16, 16, 1), vanishes("blocks.3 conv", 1, 5, 1, "-3")),
    ("family: inception\nstem: {stride: 2, pooling: max, pool_size: 3, pool_stride: 2, "
     "pool_padding: same}\nmodules: {pooling: [max, max], pool_size: 2, pool_stride: 2, "
     "pool_padding: valid}\n", (8, 8, 3), vanishes("modules.2 pool", 1, 2, 2, "0.5")),
], ids=["stem-conv", "stem-pool", "block-pool", "block-pool-width", "block-conv",
        "inception-pool"])
def test_a_vanishing_map_is_rejected_naming_the_layer(tmp_path: Path, text: str,
                                                       shape: tuple, reason: str) -> None:
    space = load_space(write(tmp_path, text))
    with pytest.raises(CandidateRejected, match=f"^{re.escape(reason)}$") as info:
        plan_candidate(space.family, space.defaults(), shape, 3)
    assert info.value.kind == "impossible"


def test_vgg16_on_8x8_digits_is_rejected_at_the_vanishing_pool() -> None:
    space = load_space(preset("vgg16"))
    reason = vanishes("blocks.4 pool", 1, 2, 2, "0.5")  # 8 -> 4 -> 2 -> 1, then 2x2 on 1x1
    with pytest.raises(CandidateRejected, match=f"^{re.escape(reason)}$") as info:
        plan_candidate("vgg", space.defaults(), (8, 8, 1), 10)
    assert info.value.kind == "impossible"
    result = _run(["plan", str(preset("vgg16")), "--input-shape", "8,8,1", "--classes", "10"])
    assert result.exit_code != 0
    assert f"REJECTED (impossible): {reason}" in result.output


# -- every variant searches ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("three_classes")
    return make_image_folder(root, classes={"beach": 8, "desert": 8, "forest": 8},
                             sizes=[(40, 30), (24, 24), (64, 48)])


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLISHED)
def test_variant_runs_a_one_trial_search(name: str, folder: Path, store) -> None:
    result = _run(["search", str(pipeline(name)), "--data", str(folder), "--max-trials", "1",
                   "--epochs", "1", "--experiment", f"p-{name}", "-q"])
    assert result.exit_code == 0, result.output
    assert "1 trained" in result.output
    experiment = store.get_experiment_by_name(f"p-{name}")
    runs = store.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == "trial"]
    assert [r.data.tags[names.TAG_TRIAL_STATUS] for r in trials] == ["completed"]
    assert trials[0].data.tags[names.TAG_FAMILY] == load_space(variant(name)).family
    search = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == "search")
    assert trials[0].data.tags.get("mlflow.parentRunId") == search.info.run_id
    assert search.data.params["data.num_classes"] == "3"


@pytest.mark.slow
def test_googlenet_search_with_auxiliary_classifiers_serves_the_main_path(folder: Path,
                                                                        store) -> None:
    """A trial trained with the auxiliary classifier after 4a logs a model without it."""
    import mlflow

    result = _run(["search", str(pipeline("googlenet")), "--data", str(folder), "--max-trials",
                   "1", "--epochs", "1", "--experiment", "p-aux", "-q", "--set", "modules=7",
                   "--set", "modules.3.aux=true", "--set", "width=0.125"])
    assert result.exit_code == 0, result.output
    experiment = store.get_experiment_by_name("p-aux")
    (trial,) = [r for r in store.search_runs([experiment.experiment_id])
                if r.data.tags.get(names.TAG_ROLE) == "trial"]
    assert trial.data.params["modules.3.aux"] == "True"
    model = mlflow.keras.load_model(f"runs:/{trial.info.run_id}/model")
    assert not [layer.name for layer in model.layers if ".aux" in layer.name]
    assert len(model.outputs) == 1
