"""The search-space language: every shipped space, every error message, sampling, keras-tuner."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunetrack.errors import PipelineError, SpaceError
from tunetrack.space import DataConfig, catalog
from tunetrack.space.language import Constraints, Space, load_space
from tunetrack.space.pipeline import Pipeline, load_pipeline

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))
FAMILY_SPACES = [ROOT / "search_spaces" / f"{f}.yaml" for f in catalog.FAMILIES]

CNN = """\
family: cnn
blocks:
  count: {int: [1, 3]}
  filters: {choice: [8, 16, 32]}
  kernel_size: {choice: [3, 5]}
  stride: {choice: [1, 2]}
  padding: {choice: [valid, same]}
  pooling: {choice: [max, avg, none]}
dense:
  count: {int: [0, 2]}
  units: {choice: [32, 64, 128]}
l2: {float: [1.0e-6, 1.0e-2], log: true}
dropout: {float: [0.0, 0.5], step: 0.1}
batch_norm: {bool: false}
activation: {choice: [relu, tanh]}
batch_size: {choice: [32, 64, 128, 256, 512]}
learning_rate: {float: [1.0e-4, 1.0e-1], log: true, default: 1.0e-3}
optimizer: {choice: [sgd, adam, rmsprop]}
constraints: {max_params: 100000, min_feature_map: 2, max_flops: 5000000}
"""

GRID = """\
family: cnn
blocks:
  count: {int: [1, 2]}
  filters: {choice: [8, 16]}
dense:
  count: {choice: [0, 1]}
  activation: {choice: [relu, tanh]}
dropout: {float: [0.0, 0.2], step: 0.1}
learning_rate: {float: [1.0e-3, 1.0e-1], log: true, step: 10}
batch_norm: {bool: false}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def space_of(tmp_path: Path, text: str) -> Space:
    return load_space(write(tmp_path, text))


def active_keys(space: Space, candidate: dict) -> set[str]:
    """What a candidate must hold, computed from the catalog, independently of space.py."""
    schema = catalog.FAMILIES[space.family]
    keys = set(schema.keys) | set(schema.groups)
    for g, group in schema.groups.items():
        keys |= {catalog.element_name(g, i, k) for i in range(1, candidate[g] + 1)
                 for k in group.keys}
        # a growth rule's start is a hyperparameter of the group (blocks.filters.start)
        keys |= {f"{g}.{k}.start" for k, spec in space._groups[g].keys.items()
                 if type(spec).__name__ == "Growth"}
    return keys


# -- shipped spaces ------------------------------------------------------------------------
def test_one_shipped_space_per_family() -> None:
    assert all(p.exists() for p in FAMILY_SPACES)
    assert (ROOT / "search_spaces" / "digits_cnn.yaml") in SHIPPED


def shipped_family(path: Path) -> str:
    """The family a shipped space's name promises: its own name, ``digits_cnn``'s cnn, and for a
    preset's searchable variant ``X_search.yaml`` the family of ``presets/X.yaml``."""
    if path.stem == "digits_cnn":
        return "cnn"
    if path.stem in ("sift_fisher", "bovw"):  # the classic family's example systems
        return "classic"
    if path.stem.endswith("_search"):
        preset = path.parent / "presets" / f"{path.stem.removesuffix('_search')}.yaml"
        assert preset.is_file(), f"{path.name} names no preset: {preset} does not exist"
        return load_space(preset).family
    return path.stem


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_parses(path: Path) -> None:
    space = load_space(path)
    assert space.family == shipped_family(path)
    assert space.searched(), "an example space should search something"
    candidate = space.defaults()
    assert set(candidate) == active_keys(space, candidate)
    assert space.complete(candidate) == candidate


def test_digits_space_is_small() -> None:
    space = load_space(ROOT / "search_spaces" / "digits_cnn.yaml")
    assert space.constraints.max_params == 200_000
    for seed in range(50):
        c = space.sample(random.Random(seed))
        assert 1 <= c["blocks"] <= 2 and c["dense"] <= 1
        assert c["blocks.1.padding"] == "same" and c["blocks.1.kernel_size"] == 3
        assert 3e-4 <= c["learning_rate"] <= 1e-2 and c["optimizer"] in ("adam", "rmsprop")


def test_example_from_the_brief(tmp_path: Path) -> None:
    space = space_of(tmp_path, CNN)
    assert space.constraints == Constraints(100_000, 2, 5_000_000)
    assert space.searched()[:3] == ["batch_size", "learning_rate", "optimizer"]
    d = space.defaults()
    assert d["learning_rate"] == 1e-3 and d["l2"] == 1e-6 and d["batch_norm"] is False
    assert d["blocks"] == 1 and "blocks.2.filters" not in d and d["dense"] == 0
    assert d["momentum"] == catalog.TRAINING["momentum"].default  # omitted: catalog default


# -- every error rule ------------------------------------------------------------------------
ERRORS = [
    ("family: cnn\nfiltres: 3\n",
     r"space.yaml:2: filtres: unknown key 'filtres'.*; allowed: 'family'"),
    ("family: cnn\nblocks:\n  filtres: {choice: [8]}\n",
     r"space.yaml:3: blocks.filtres: unknown key 'filtres' in group 'blocks' "
     r"\(did you mean 'filters'\?\); allowed: 'count', 'filters'"),
    ("family: mlp\nblocks: {count: 2}\n",
     r"space.yaml:2: blocks: family 'mlp' has no key 'blocks' \(it applies to cnn, vgg, resnet\)"),
    ("family: hog\naugment_translate: 0.1\n",
     r"space.yaml:2: augment_translate: family 'hog' has no key 'augment_translate' \(it applies "
     r"to linear, softmax, mlp, cnn, vgg, resnet, inception\)"),
    ("family: cnn\naugment_flip: sideways\n",
     r"space.yaml:2: augment_flip: unknown augment_flip 'sideways'; allowed: 'none', "
     r"'horizontal'"),
    ("family: cnn\naugment_rotate: {float: [0, 200]}\n",
     r"space.yaml:2: augment_rotate: max 200.0 is out of range: augment_rotate must be >= 0.0 "
     r"and <= 180.0"),
    ("family: linear\ndropuot: 0.1\n",
     r"dropuot: family 'linear' has no key|dropuot: unknown key 'dropuot'"),
    ("family: mlp\ndropuot: 0.1\n",
     r"space.yaml:2: dropuot: unknown key 'dropuot' \(did you mean 'dropout'\?\)"),
    ("family: cnn\nbatch_size: {float: [16, 64]}\n",
     r"space.yaml:2: batch_size: batch_size takes int values, so \{float: ...\} does not apply; "
     r"write \{int: \[min, max\]\}"),
    ("family: cnn\nblocks:\n  filters: {choice: [8, abc]}\n",
     r"space.yaml:3: blocks.filters: expected an int, but got 'abc'"),
    ("family: cnn\nactivation: 3\n",
     r"space.yaml:2: activation: expected a str, but got 3; allowed: 'sigmoid', 'tanh'"),
    ("family: cnn\ndropout: {float: [0.5, 0.1]}\n",
     r"space.yaml:2: dropout: min must be <= max, but got \[0.5, 0.1\]"),
    ("family: cnn\noptimizer: {choice: []}\n",
     r"space.yaml:2: optimizer: a choice needs at least one value, but got \[\]"),
    ("family: cnn\nbatch_size: {choice: [32, 64, 32]}\n",
     r"space.yaml:2: batch_size: choice values must be distinct, but 32 appears more than once"),
    ("family: cnn\nl2: {float: [0.0, 1.0e-2], log: true}\n",
     r"space.yaml:2: l2: log sampling needs min > 0, but got min=0.0"),
    ("family: cnn\ndropout: {float: [0.0, 0.5], step: 0.8}\n",
     r"space.yaml:2: dropout: step 0.8 is larger than the range \[0.0, 0.5\]"),
    ("family: cnn\nbatch_size: {int: [16, 64], log: true, step: 8}\n",
     r"batch_size: step 8 is larger than the range \[16, 64\] \(with log: true, min \* step"),
    ("family: cnn\nbatch_size: {int: [16, 64], log: true, step: 1}\n",
     r"batch_size: step with log: true the step multiplies, so it must be > 1, but got 1"),
    ("family: cnn\nbatch_size: {int: [16, 64], step: 0}\n",
     r"batch_size: step must be > 0, but got 0"),
    ("family: cnn\nbatch_size: {int: [16, 64], step: 2.5}\n",
     r"batch_size: step must be an int, but got 2.5"),
    ("family: cnn\ndropout: {float: [0.0, 1.5]}\n",
     r"space.yaml:2: dropout: max 1.5 is out of range: dropout must be >= 0.0 and < 1.0"),
    ("family: cnn\nblocks:\n  filters: {choice: [0, 8]}\n",
     r"space.yaml:3: blocks.filters: 0 is out of range: filters must be >= 1"),
    ("family: cnn\nlearning_rate: 0\n",
     r"space.yaml:2: learning_rate: 0.0 is out of range: learning_rate must be > 0.0"),
    ("family: cnn\nlearning_rate: {float: [0.0, 0.1]}\n",
     r"learning_rate: min 0.0 is out of range: learning_rate must be > 0.0"),
    ("family: cnn\nactivation: {choice: [relu, relux]}\n",
     r"space.yaml:2: activation: unknown activation 'relux' \(did you mean 'relu'\?\); "
     r"allowed: 'sigmoid', 'tanh', 'relu', 'leaky_relu'"),
    ("family: cnn\noptimizer: adamw\n",
     r"optimizer: unknown optimizer 'adamw' \(did you mean 'adam'\?\)"),
    ("family: cnn\nblocks:\n  pooling: maxx\n",
     r"space.yaml:3: blocks.pooling: unknown pooling 'maxx' \(did you mean 'max'\?\)"),
    ("family: cnn\nblocks:\n  padding: {choice: [same, vaild]}\n",
     r"blocks.padding: expected 'same', 'valid' or a whole number of pixels >= 0, but got "
     r"'vaild' \(did you mean 'valid'\?\)"),
    ("family: cnnn\n",
     r"space.yaml:1: family: unknown family 'cnnn' \(did you mean 'cnn'\?\); allowed: 'linear'"),
    ("description: no family\n",
     r"space.yaml:1: family: missing required key 'family'; allowed: 'linear', 'softmax'"),
    ("family: cnn\nblocks:\n  count: {int: [0, 2]}\n",
     r"space.yaml:3: blocks.count: min 0 is out of range: count must be >= 1 "
     r"\(the minimum count of group 'blocks'\)"),
    ("family: cnn\nconstraints: {max_param: 10}\n",
     r"space.yaml:2: constraints.max_param: unknown constraint 'max_param' "
     r"\(did you mean 'max_params'\?\); allowed: 'max_params', 'min_feature_map', 'max_flops'"),
    ("family: cnn\nconstraints: {max_params: -3}\n",
     r"constraints.max_params: a constraint must be a positive integer, but got -3"),
    ("family: cnn\ndropout: {float: [0.0, 0.5], stp: 0.1}\n",
     r"space.yaml:2: dropout: unknown option 'stp' of \{float: ...\} \(did you mean 'step'\?\)"),
    ("family: cnn\ndropout: {floats: [0.0, 0.5]}\n",
     r"dropout: expected one of int, float, choice, bool, fixed as a kind, but got 'floats' "
     r"\(did you mean 'float'\?\)"),
    ("family: cnn\noptimizer: [adam, sgd]\n",
     r"optimizer: a list is not a value; write \{choice: \['adam', 'sgd'\]\}"),
    ("family: cnn\ndropout: {float: 0.5}\n",
     r"dropout: expected \[min, max\], but got 0.5"),
    ("family: cnn\nbatch_norm: {bool: maybe}\n",
     r"batch_norm: expected a bool, but got 'maybe'"),
    ("family: cnn\nbatch_norm: {int: [0, 1]}\n",
     r"batch_norm: batch_norm takes bool values, so \{int: ...\} does not apply"),
    ("family: cnn\nbatch_size: {int: [16, 64], default: 128}\n",
     r"batch_size: default 128 is not a value of the space: it allows an int from 16 to 64"),
    ("family: cnn\noptimizer: {choice: [adam, sgd], default: rmsprop}\n",
     r"optimizer: default 'rmsprop' is not a value of the space: it allows one of 'adam', 'sgd'"),
    ("family: cnn\ndense:\n  int: [0, 2]\n",
     r"dense.int: unknown key 'int' in group 'dense'.*write count: \{int: ...\}"),
    ("family: cnn\nfamily: mlp\n", r"space.yaml:2: family: duplicate key 'family'"),
    ("family: cnn\nblocks: {count: 2\n", r"space.yaml:\d+: YAML syntax error"),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_error_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as info:
        space_of(tmp_path, text)
    assert all(p.file and p.file.endswith("space.yaml") for p in info.value.problems)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"nope.yaml: file not found"):
        load_space(tmp_path / "nope.yaml")


def test_every_problem_is_collected(tmp_path: Path) -> None:
    text = """\
    family: cnn
    dropout: {float: [0.0, 1.5]}
    blocks:
      count: {int: [0, 2]}
      filters: {choice: [8, 8]}
    optimizer: adamw
    colours: 3
    constraints: {max_param: 1}
    """
    with pytest.raises(SpaceError) as info:
        space_of(tmp_path, text)
    lines = [p.line for p in info.value.problems]
    keys = [p.key for p in info.value.problems]
    assert keys == ["constraints.max_param", "dropout", "blocks.count", "blocks.filters",
                    "optimizer", "colours"]
    assert lines == [8, 2, 4, 5, 6, 7]
    assert str(info.value).count("\n") == 5  # one line per problem


def test_numeric_strings_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-4 (no dot) as a string.
    space = space_of(tmp_path, """\
    family: softmax
    learning_rate: {float: [1e-4, 1e-1], log: true, default: 1e-3}
    l2: 1e-5
    constraints: {max_params: 1e5}
    """)
    assert space.defaults()["learning_rate"] == 1e-3 and space.defaults()["l2"] == 1e-5
    assert space.constraints.max_params == 100_000


def test_plain_values_and_shorthands(tmp_path: Path) -> None:
    space = space_of(tmp_path, """\
    family: cnn
    description: fixed things
    blocks: {count: 2, filters: 8, pooling: {fixed: avg}}
    dense: 0
    batch_norm: {choice: [true, false]}
    dropout: {float: [0.1, 0.1]}
    """)
    assert space.description == "fixed things"
    assert space.searched() == ["batch_norm"]
    d = space.defaults()
    assert d["blocks"] == 2 and d["blocks.2.filters"] == 8 and d["blocks.2.pooling"] == "avg"
    assert d["dense"] == 0 and d["batch_norm"] is True and d["dropout"] == 0.1


# -- inherit ---------------------------------------------------------------------------------
def test_element_follows_searched_top_level_value(tmp_path: Path) -> None:
    space = space_of(tmp_path, """\
    family: mlp
    activation: {choice: [relu, tanh, sigmoid]}
    dense: {count: {int: [1, 3]}}
    """)
    assert "dense.1.activation" not in space.searched()
    for seed in range(30):
        c = space.sample(random.Random(seed))
        assert all(c[f"dense.{i}.activation"] == c["activation"]
                   for i in range(1, c["dense"] + 1))


def test_element_key_set_in_group_is_searched_per_element(tmp_path: Path) -> None:
    space = space_of(tmp_path, """\
    family: mlp
    dense: {count: 2, activation: {choice: [relu, tanh]}}
    """)
    assert space.searched() == ["dense.1.activation", "dense.2.activation"]


# -- sample / complete / canonical (properties) ------------------------------------------------
PRESETS = sorted((ROOT / "search_spaces" / "presets").glob("*.yaml"))
SPACES = {p.stem: load_space(p) for p in [*SHIPPED, *PRESETS]}


def check_in_space(space: Space, candidate: dict) -> None:
    """Every value has its catalog type and lies in the space's range (or catalog bounds)."""
    from tunetrack.space.dims import bounds_problem

    dims = {p.name: p.dim for p in space._params}
    schema = catalog.FAMILIES[space.family]
    for name, value in candidate.items():
        parts = name.split(".")
        if len(parts) == 3:  # blocks.2.filters, or a growth rule's blocks.filters.start
            group = schema.groups[parts[0]].keys
            key = group[parts[1]] if parts[2] == "start" else group[parts[2]]
        else:
            key = schema.keys.get(name)
        if key is not None:
            # a padding is text ('same', 'valid', '2'): one type for keras-tuner's Choice
            assert type(value) is (str if key.type is catalog.Padding else key.type), \
                (name, value)
            assert bounds_problem(key, parts[-1], value) is None, (name, value)
        if name in dims:
            assert dims[name].contains(value), (name, value, dims[name].describe())


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SPACES)), seed=st.integers(0, 2**32 - 1))
def test_sample_is_complete_active_and_in_range(name: str, seed: int) -> None:
    space = SPACES[name]
    candidate = space.sample(random.Random(seed))
    assert space.complete(candidate) == candidate
    assert set(candidate) == active_keys(space, candidate)
    check_in_space(space, candidate)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), junk=st.integers(1, 999))
def test_inactive_values_do_not_change_canonical(seed: int, junk: int) -> None:
    space = SPACES["cnn"]
    candidate = space.sample(random.Random(seed))
    noisy = dict(candidate)
    for i in range(candidate["blocks"] + 1, 4):
        noisy[f"blocks.{i}.filters"] = junk
    for i in range(candidate["dense"] + 1, 3):
        noisy[f"dense.{i}.units"] = junk
    assert space.canonical(noisy) == space.canonical(candidate)
    assert hash(space.canonical(noisy)) == hash(space.canonical(candidate))
    changed = dict(candidate, **{"blocks.1.filters": candidate["blocks.1.filters"] * 2 + 1})
    assert space.canonical(changed) != space.canonical(candidate)


@st.composite
def random_spaces(draw: st.DrawFn) -> str:
    """Small cnn spaces with random counts, ranges, steps and choices."""
    lo = draw(st.integers(1, 3))
    hi = draw(st.integers(lo, 4))
    dlo = draw(st.integers(0, 2))
    filters = draw(st.lists(st.sampled_from([4, 8, 16, 32]), min_size=1, max_size=4, unique=True))
    step = draw(st.sampled_from([None, 0.05, 0.1, 0.25]))
    log_step = draw(st.sampled_from([None, 2, 10]))
    kstep = draw(st.integers(1, 3))
    return "\n".join([
        "family: cnn",
        f"blocks: {{count: {{int: [{lo}, {hi}]}}, filters: {{choice: {filters}}},"
        f" kernel_size: {{int: [1, 7], step: {kstep}}}}}",
        f"dense: {{count: {{choice: {sorted({dlo, dlo + 1, 3})}}}, units: {{int: [8, 64]}}}}",
        "dropout: {float: [0.0, 0.5]" + (f", step: {step}" if step else "") + "}",
        "learning_rate: {float: [1.0e-4, 1.0], log: true"
        + (f", step: {log_step}" if log_step else "") + "}",
        "batch_size: {int: [16, 256], log: true}",
    ]) + "\n"


@settings(max_examples=40, deadline=None)
@given(text=random_spaces(), seed=st.integers(0, 2**32 - 1))
def test_random_spaces_sample_inside(tmp_path_factory: pytest.TempPathFactory, text: str,
                                     seed: int) -> None:
    space = load_space(write(tmp_path_factory.mktemp("s"), text))
    candidate = space.sample(random.Random(seed))
    assert space.complete(candidate) == candidate
    assert set(candidate) == active_keys(space, candidate)
    check_in_space(space, candidate)


def test_sample_reaches_the_ends_of_ranges(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, GRID))
    rng = random.Random(0)
    seen = [space.sample(rng) for _ in range(300)]
    assert {c["dropout"] for c in seen} == {0.0, 0.1, 0.2}
    assert {c["learning_rate"] for c in seen} == {1e-3, 1e-2, 1e-1}
    assert {c["blocks"] for c in seen} == {1, 2} and {c["dense"] for c in seen} == {0, 1}


def test_seeded_sample_sequence_is_reproducible() -> None:
    space = SPACES["cnn"]
    first = [space.sample(random.Random(7)) for _ in range(3)]
    rng_a, rng_b = random.Random(11), random.Random(11)
    assert [space.sample(rng_a) for _ in range(20)] == [space.sample(rng_b) for _ in range(20)]
    assert first[0] == first[1] == first[2]
    assert len({space.canonical(space.sample(rng_a)) for _ in range(20)}) > 10


def test_complete_fills_converts_and_rejects_unknown_names() -> None:
    space = SPACES["cnn"]
    c = space.complete({"blocks": "2", "learning_rate": "1e-3", "tuner/epochs": 3})
    assert c["blocks"] == 2 and c["learning_rate"] == 1e-3 and "blocks.2.filters" in c
    assert c == space.complete(c)
    with pytest.raises(SpaceError, match=r"blocks.1.filtres: unknown hyperparameter "
                                         r"'blocks.1.filtres' \(did you mean 'blocks.1.filters'"):
        space.complete({"blocks.1.filtres": 8})


# -- override (plan --set) -------------------------------------------------------------------
def test_override_parses_and_validates() -> None:
    space = SPACES["cnn"]
    c = space.override(space.defaults(), {"blocks": "3", "blocks.3.filters": "32",
                                          "dropout": "0.3", "batch_norm": "true", "l1": "0.01"})
    assert c["blocks"] == 3 and c["blocks.3.filters"] == 32 and c["dropout"] == 0.3
    assert c["batch_norm"] is True and c["l1"] == 0.01 and c["blocks.3.stride"] == 1


@pytest.mark.parametrize("key, value, message", [
    ("blocks.1.filtres", "8", r"--set: blocks.1.filtres: unknown hyperparameter "
                              r"'blocks.1.filtres' \(did you mean 'blocks.1.filters'\?\)"),
    ("learning_rat", "0.1", r"unknown hyperparameter 'learning_rat' \(did you mean "
                            r"'learning_rate'\?\)"),
    ("blocks", "4", r"--set: blocks: 4 is not in the space, which allows an int from 1 to 3"),
    ("blocks.1.filters", "12", r"blocks.1.filters: 12 is not in the space, which allows one of "
                               r"8, 16, 32"),
    ("dropout", "0.25", r"dropout: 0.25 is not in the space, which allows a float from 0.0 to "
                        r"0.5 in steps of 0.1"),
    ("batch_size", "big", r"batch_size: expected an int, but got 'big'; the space allows one of"),
    ("blocks.1.stride", "2", r"blocks.1.stride: 2 is not in the space, which allows only 1"),
    ("momentum", "1.0", r"momentum: 1.0 is out of range: momentum must be >= 0.0 and < 1.0"),
    ("blocks.1.activation", "tanh", r"blocks.1.activation follows 'activation' in this space"),
    ("blocks.2.filters", "16", r"blocks.2.filters: element 2 is inactive because blocks = 1; "
                               r"also set blocks=2"),
])
def test_override_errors(key: str, value: str, message: str) -> None:
    space = SPACES["cnn"]
    with pytest.raises(SpaceError, match=message):
        space.override(space.defaults(), {key: value})


def test_override_reports_every_assignment() -> None:
    space = SPACES["cnn"]
    with pytest.raises(SpaceError) as info:
        space.override(space.defaults(), {"blocks": "9", "dropout": "x", "nope": "1"})
    assert [p.key for p in info.value.problems] == ["blocks", "dropout", "nope"]


# -- grid, constraints ---------------------------------------------------------------------------
def test_grid_ready(tmp_path: Path) -> None:
    assert load_space(write(tmp_path, GRID)).grid_ready() is None
    assert SPACES["cnn"].grid_ready() == ("learning_rate: a float range needs a step for grid "
                                          "search; l2: a float range needs a step for grid search")
    space = space_of(tmp_path, "family: cnn\nblocks:\n  filters: {int: [8, 64], log: true}\n")
    assert space.grid_ready() == ("blocks.filters: a log-sampled int range needs a step for "
                                  "grid search")


def test_constraints_merged() -> None:
    base = Constraints(max_params=10, min_feature_map=2)
    assert base.merged(Constraints(max_params=5)) == Constraints(5, 2, None)
    assert base.merged(None) == base
    assert base.merged(Constraints()) == base


# -- pipelines: objective and direction ---------------------------------------------------------
def pipeline_of(tmp_path: Path, text: str) -> Pipeline:
    write(tmp_path, "family: cnn\n")
    return load_pipeline(write(tmp_path, "space: space.yaml\n" + text, "pipe.yaml"))


@pytest.mark.parametrize("text, objective, direction, stated", [
    ("", "val_accuracy", "max", False),
    ("objective: val_loss\n", "val_loss", "min", False),
    ("objective: accuracy\n", "accuracy", "max", False),
    ("objective: {name: loss}\n", "loss", "min", False),
    ("objective: {name: val_loss, direction: min}\n", "val_loss", "min", True),
    ("objective:\n  direction: max\n  name: val_accuracy\n", "val_accuracy", "max", True),
])
def test_objective_direction_is_inferred_or_stated(tmp_path: Path, text: str, objective: str,
                                                   direction: str, stated: bool) -> None:
    pipeline = pipeline_of(tmp_path, text)
    assert (pipeline.objective, pipeline.direction, pipeline.direction_stated) == (
        objective, direction, stated)
    assert pipeline.to_dict()["direction"] == direction


OBJECTIVE_ERRORS = [
    ("objective:\n  name: val_accuracy\n  direction: min\n",
     r"pipe.yaml:4: objective.direction: direction 'min' contradicts 'val_accuracy', which is "
     r"better higher \(direction 'max'\); write direction: max or leave it out$"),
    ("objective:\n  name: loss\n  direction: max\n",
     r"pipe.yaml:4: objective.direction: direction 'max' contradicts 'loss', which is better "
     r"lower \(direction 'min'\)"),
    ("objective:\n  name: val_loss\n  direction: maximum\n",
     r"pipe.yaml:4: objective.direction: must be one of 'min', 'max', got 'maximum' "
     r"\(did you mean 'max'\?\)$"),
    ("objective:\n  name: val_loss\n  dirction: min\n",
     r"pipe.yaml:4: objective.dirction: unknown key 'dirction'; allowed: 'name', 'direction' "
     r"\(did you mean 'direction'\?\)$"),
    ("objective:\n  direction: min\n",
     r"pipe.yaml:2: objective: missing key 'name': write \{name: METRIC, direction: min\|max\} "
     r"with METRIC one of 'val_accuracy', 'val_loss', 'accuracy', 'loss', 'val_macro_f1'$"),
    ("objective:\n  name: val_acc\n",
     r"pipe.yaml:3: objective.name: must be one of 'val_accuracy', 'val_loss', 'accuracy', "
     r"'loss', 'val_macro_f1', got 'val_acc' \(did you mean 'val_accuracy'\?\)$"),
    ("objective: val_acc\n",
     r"pipe.yaml:2: objective: must be one of .*got 'val_acc' \(did you mean 'val_accuracy'\?\)"),
    ("objective: [val_loss, min]\n",
     r"pipe.yaml:2: objective: must be a metric name \('val_accuracy', 'val_loss', 'accuracy', "
     r"'loss', 'val_macro_f1'\) or a mapping like \{name: val_loss, direction: min\}, "
     r"got \['val_loss', 'min'\]"),
]


@pytest.mark.parametrize("text, message", OBJECTIVE_ERRORS,
                         ids=[m.split(": ", 2)[-1][:40] for _, m in OBJECTIVE_ERRORS])
def test_objective_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message) as info:
        pipeline_of(tmp_path, text)
    assert len(info.value.problems) == 1


def test_objective_problems_are_collected_with_the_others(tmp_path: Path) -> None:
    text = "objective:\n  name: val_loss\n  direction: up\n  weight: 2\ntuner: {kind: randm}\n"
    with pytest.raises(PipelineError) as info:
        pipeline_of(tmp_path, text)
    assert [(p.line, p.key) for p in info.value.problems] == [
        (5, "objective.weight"), (4, "objective.direction"), (6, "tuner.kind")]


def test_pipeline_built_in_python_checks_its_direction() -> None:
    with pytest.raises(ValueError, match=r"Pipeline\(objective='val_loss'\): direction 'max' "
                                         r"contradicts 'val_loss'"):
        Pipeline(path="p.yaml", name="p", space="s.yaml", objective="val_loss")
    with pytest.raises(ValueError, match=r"direction must be 'min' or 'max', got 'up'"):
        Pipeline(path="p.yaml", name="p", space="s.yaml", direction="up")
    custom = Pipeline(path="p.yaml", name="p", space="s.yaml", objective="val_auc",
                      direction="max", direction_stated=True)
    assert custom.direction == "max"


# -- pipelines: data and constraints sections ------------------------------------------------------
def test_pipeline_data_is_a_data_config(tmp_path: Path) -> None:
    assert pipeline_of(tmp_path, "").data == DataConfig(source="digits")
    data = pipeline_of(tmp_path, "data: {source: images, image_size: 24, test_split: 0.1}\n").data
    assert isinstance(data, DataConfig)
    assert data == DataConfig(source=str(tmp_path / "images"), image_size=(24, 24),
                              test_split=0.1)
    assert pipeline_of(tmp_path, "data: {source: 'keras:mnist'}\n").data.source == "keras:mnist"
    overridden = pipeline_of(tmp_path, "").override(data="keras:cifar10")
    assert overridden.data == DataConfig(source="keras:cifar10")


@pytest.mark.parametrize("text, message", [
    ("data: {source: ''}\n",
     r"pipe.yaml:2: data.source: must be 'digits', 'keras:NAME' or a folder path, got ''$"),
    ("data: {validation_split: 0.5, test_split: 0.5}\n",
     r"pipe.yaml:2: data: validation_split \+ test_split must be below 1, got 0.5 \+ 0.5$"),
    ("data: {cache_dir: /tmp}\n", r"pipe.yaml:2: data.cache_dir: unknown key 'cache_dir'"),
])
def test_pipeline_data_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        pipeline_of(tmp_path, text)


def test_pipeline_and_space_share_one_constraints(tmp_path: Path) -> None:
    pipeline = pipeline_of(tmp_path, "constraints: {max_params: 1e5, max_flops: null}\n")
    assert pipeline.constraints == Constraints(max_params=100_000)
    assert type(pipeline.constraints) is type(load_space(tmp_path / "space.yaml").constraints)
    space = Constraints(max_params=10, min_feature_map=2, max_flops=7)
    assert space.merged(pipeline.constraints) == Constraints(100_000, 2, 7)


@pytest.mark.parametrize("text, message", [
    ("constraints: {max_param: 10}\n",
     r"pipe.yaml:2: constraints.max_param: unknown constraint 'max_param' \(did you mean "
     r"'max_params'\?\); allowed: 'max_params', 'min_feature_map', 'max_flops'$"),
    ("constraints:\n  max_flops: 0\n",
     r"pipe.yaml:3: constraints.max_flops: a constraint must be a positive integer, but got 0$"),
    ("constraints: 5\n",
     r"pipe.yaml:2: constraints: expected a mapping like \{max_params: 100000\}, but got 5$"),
])
def test_pipeline_constraint_errors_match_the_space_rules(tmp_path: Path, text: str,
                                                          message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        pipeline_of(tmp_path, text)


# -- keras-tuner -------------------------------------------------------------------------------
def _oracles(tmp_path: Path) -> dict:
    import keras_tuner as kt

    made = {
        "random": kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=8, seed=1),
        "bayesian": kt.oracles.BayesianOptimizationOracle(objective="val_accuracy",
                                                          max_trials=4, seed=1,
                                                          num_initial_points=3),
        "grid": kt.oracles.GridSearchOracle(objective="val_accuracy", max_trials=8, seed=1),
        "hyperband": kt.oracles.HyperbandOracle(objective="val_accuracy", max_epochs=9, seed=1),
    }
    for name, oracle in made.items():
        oracle._set_project_dir(str(tmp_path), name)
        oracle.verbose = 0
    return made


@pytest.mark.parametrize("kind", ["random", "bayesian", "grid", "hyperband"])
@pytest.mark.parametrize("text", [CNN, GRID], ids=["cnn", "grid"])
def test_declare_with_keras_tuner_oracles(tmp_path: Path, kind: str, text: str) -> None:
    import keras_tuner as kt

    space = space_of(tmp_path, text)
    if kind == "grid" and space.grid_ready():
        text = GRID
        space = space_of(tmp_path, text)
    oracle = _oracles(tmp_path)[kind]
    if kind == "bayesian" and text is CNN:
        oracle.num_initial_points = 4  # its Gaussian process on ~40 dimensions takes a minute
    hp = oracle.get_space()
    assert space.declare(hp) == space.defaults()
    oracle.update_space(hp)
    assert [h.name for h in oracle.get_space().space] == [p.name for p in space._params]
    seen = set()
    for i in range(8):
        trial = oracle.create_trial(f"tuner{i}")
        if trial.status != "RUNNING":
            break
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if not k.startswith("tuner/")}
        candidate = space.declare(trial.hyperparameters.copy())
        assert candidate == space.complete(values)
        assert set(candidate) == active_keys(space, candidate)
        # only active hyperparameters carry values, and every active one does
        active = {p.name for p in space._params
                  if p.when is None or candidate[p.group] in p.when}
        assert set(values) == active
        check_in_space(space, candidate)
        seen.add(space.canonical(candidate))
        trial.metrics.register("val_accuracy", direction="max")
        oracle.update_trial(trial.trial_id, {"val_accuracy": random.random()})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    assert len(seen) >= 2


def test_grid_oracle_enumerates_what_sample_reaches(tmp_path: Path) -> None:
    import keras_tuner as kt

    space = space_of(tmp_path, GRID.replace("dropout: {float: [0.0, 0.2], step: 0.1}\n", ""))
    oracle = _oracles(tmp_path)["grid"]
    oracle.max_trials = None
    hp = oracle.get_space()
    space.declare(hp)
    oracle.update_space(hp)
    grid = set()
    for i in range(2000):
        trial = oracle.create_trial(f"t{i}")
        if trial.status != "RUNNING":
            break
        grid.add(space.canonical(space.declare(trial.hyperparameters.copy())))
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    rng = random.Random(0)
    sampled = {space.canonical(space.sample(rng)) for _ in range(3000)}
    # blocks 1: 2 filters, blocks 2: 4; dense 0: 1, dense 1: 2; lr 3; bool 2
    assert len(grid) == (2 + 4) * (1 + 2) * 3 * 2
    assert sampled == grid


# -- import hygiene ----------------------------------------------------------------------------
HEAVY = ("tensorflow", "keras", "keras_tuner", "mlflow", "jax", "torch")


def test_space_and_every_submodule_import_no_heavy_package() -> None:
    """``tunetrack.space`` is pure: importing it, and each of its modules, pulls in no deep
    learning or tracking package. The child prints top-level package names only."""
    code = textwrap.dedent(f"""\
        import importlib, json, pkgutil, sys
        import tunetrack.space
        names = [m.name for m in pkgutil.walk_packages(tunetrack.space.__path__,
                                                        "tunetrack.space.")]
        for name in names:
            importlib.import_module(name)
        top = {{m.split(".")[0] for m in sys.modules}}
        print(json.dumps({{"modules": names, "heavy": sorted(top & set({HEAVY!r}))}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=120)
    report = json.loads(out.stdout)
    assert {"tunetrack.space.pipeline", "tunetrack.space.plan", "tunetrack.space.yamlio",
            "tunetrack.space.language"} <= set(report["modules"])
    assert report["heavy"] == []


def test_keras_tuner_float_step_reaches_max() -> None:
    # keras-tuner counts steps with //, and (0.5 - 0.0) // 0.1 == 4: declare compensates.
    import keras_tuner as kt

    hp = kt.HyperParameters()
    SPACES["cnn"].declare(hp)
    dropout = next(h for h in hp.space if h.name == "dropout")
    assert [round(v, 9) for v in dropout.values] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert round(dropout.prob_to_value(0.999), 9) == 0.5
