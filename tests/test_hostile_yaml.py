"""Hostile YAML and silent acceptances: each case is one line, exit 2, from ``tunetrack validate``.

Every case names its expected exit code and message; none is timed here (the time and memory
caps are checked by ``python -m benchmarks --only hostile``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack.cli import main

from .imagefolders import make_image_folder

SPACE = """\
family: cnn
blocks:
  count: {int: [1, 2]}
  filters: {choice: [4, 8]}
  kernel_size: 3
  padding: same
dense:
  count: 1
  units: 16
"""
WIDE = """\
family: cnn
blocks:
  count: 2
  filters: {choice: [64, 128]}
  kernel_size: 3
  padding: same
  pooling: none
dense:
  count: 1
  units: {choice: [512, 1024]}
"""
KERNEL_9 = "family: cnn\nblocks:\n  count: 1\n  filters: 4\n  kernel_size: 9\n  padding: valid\n"


def laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": ``width ** levels`` values from a few hundred bytes."""
    lines = ["family: cnn", 'l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


# (name, file text, expected message after "FILE:"; a regex). Every one exits 2.
YAML_CASES = [
    ("billion-laughs", laughs(), r"2: too many values once aliases are expanded \(limit 20,000\)"),
    ("many-aliases", "family: cnn\na: &a 1\nb: [" + ", ".join(["*a"] * 200) + "]\n",
     r"3: too many aliases \(limit 100\)"),
    ("self-alias", "family: cnn\na: &a [*a]\n",
     r"2: a.0: an alias refers to the list or mapping that contains it"),
    ("self-alias-map", "family: cnn\na: &a {b: *a}\n",
     r"2: a.b: an alias refers to the list or mapping that contains it"),
    ("too-large", "family: cnn\n" + "# padding\n" * 120_000,
     r" too large \(1,200,012 bytes, limit 1 MiB\)"),
    ("long-list", "space: s.yaml\ntuner:\n  max_trials: [" + ", ".join(["1"] * 20_000) + "]\n",
     r"3: a list with too many entries \(limit 10,000\)"),
    ("many-keys", "family: cnn\n" + "".join(f"k{i}: 1\n" for i in range(50_000)),
     r"2001: too many keys \(limit 2,000\)"),
    ("deep-flow", "family: cnn\na: " + "[" * 5000 + "]" * 5000 + "\n",
     r"2: nested too deeply \(limit 32 levels\)"),
    ("deep-block", "family: cnn\n" + "".join("  " * i + f"k{i}:\n" for i in range(40)),
     r"\d+: nested too deeply \(limit 32 levels\)"),
    ("deep-alias", "family: cnn\na: &a " + "[" * 30 + "1" + "]" * 30 + "\nb: " + "[" * 20
     + "*a" + "]" * 20 + "\n", r"2: .*nested too deeply once aliases are expanded"),
    ("python-object", "family: !!python/object/apply:os.system ['true']\n",
     r"1: family: unsupported YAML tag '!!python/object/apply:os.system' on a list"),
    ("python-name", "family: !!python/name:os.system cnn\n",
     r"1: family: unsupported YAML tag '!!python/name:os.system' on a value"),
    ("tag-map", "family: cnn\nconstraints: !!map {max_params: 10}\n",
     r"2: constraints: unsupported YAML tag '!!map' on a mapping"),
    ("tag-seq", "family: cnn\nblocks: {count: 1, filters: !!seq [4]}\n",
     r"2: blocks.filters: unsupported YAML tag '!!seq' on a list"),
    ("tag-str", "family: !!str cnn\n", r"1: family: unsupported YAML tag '!!str' on a value"),
    ("tag-local", "family: !cnn cnn\n", r"1: family: unsupported YAML tag '!cnn' on a value"),
    ("tag-binary", "family: cnn\ndescription: !!binary aGk=\n",
     r"2: description: unsupported YAML tag '!!binary' on a value"),
    ("merge-key", "family: cnn\nbase: &b {x: 1}\nother:\n  <<: *b\n",
     r"4: other.<<: merge keys \('<<'\) are not supported"),
    ("nan", "space: s.yaml\ntuner: {max_minutes: .nan}\n",
     r"2: tuner.max_minutes: '.nan' is not a finite number"),
    ("inf", "space: s.yaml\ntuner: {max_minutes: .inf}\n",
     r"2: tuner.max_minutes: '.inf' is not a finite number"),
    ("nan-text", "space: s.yaml\ntuner: {max_minutes: 'nan'}\n",
     r"2: tuner.max_minutes: must be a finite number, got nan"),
    ("space-nan", "family: cnn\nlearning_rate: .nan\n", r"2: learning_rate: "),
    ("binary-junk", b"family: cnn\n\x00\x01\x02\n",
     r"2: YAML syntax error: unacceptable character #x0000 \(control characters are not "
     r"allowed\)"),
    ("not-utf8", b"family: \xff\xfe\n", r" cannot read the file: 'utf-8' codec"),
    ("two-documents", "family: cnn\n---\nfamily: cnn\n", r"expected a single document"),
    ("undefined-alias", "family: *nowhere\n", r"1: YAML syntax error: found undefined alias"),
    ("duplicate-anchor", "family: cnn\na: &x 1\nb: &x 2\n", r"YAML syntax error: found duplicate "
                                                             r"anchor 'x'"),
]
# pipelines that `search` would refuse before training (each beside SPACE as s.yaml)
PIPELINE_CASES = [
    ("empty-experiment", "space: s.yaml\nexperiment: ''\n", r"2: experiment: must not be empty"),
    ("blank-name", "space: s.yaml\nname: '  '\n", r"2: name: must not be empty"),
    ("unknown-keras", "space: s.yaml\ndata: {source: 'keras:mnits'}\n",
     r"2: data.source: unknown keras dataset 'mnits'.*did you mean 'mnist'"),
    ("empty-source", "space: s.yaml\ndata: {source: ''}\n",
     r"2: data.source: must be 'digits', 'keras:NAME' or a folder path, got ''"),
    ("source-is-a-file", "space: s.yaml\ndata: {source: s.yaml}\n",
     r"2: data.source: image folder source is not a directory"),
    ("validation-split-zero", "space: s.yaml\ndata: {validation_split: 0}\n",
     r"2: data.validation_split: must be above 0.0, got 0"),
    ("test-split-one", "space: s.yaml\ndata: {test_split: 1.0}\n",
     r"2: data.test_split: must be below 1.0, got 1.0"),
    ("splits-sum", "space: s.yaml\ndata: {validation_split: 0.5, test_split: 0.5}\n",
     r"validation_split \+ test_split must be below 1"),
    ("splits-too-small", "space: s.yaml\ndata: {validation_split: 0.001, test_split: 0.001}\n",
     r"2: data.source: class '8' has 174 images, too few for the splits"),
    ("keras-split", "space: s.yaml\ndata: {source: 'keras:mnist', validation_split: 0.00001}\n",
     r"2: data.source: keras:mnist: its smallest class has 5421 training images"),
    ("no-candidate-fits", "space: wide.yaml\nconstraints: {max_params: 1000}\n",
     r"2: constraints: no candidate fits 8×8×1 images and 10 classes: 200 sampled, every one "
     r"exceeds max_params \(e.g. [\d,]+ parameters > max_params 1,000\)"),
    ("kernel-too-big", "space: k9.yaml\n",
     r"1: space: no candidate fits 8×8×1 images and 10 classes: 200 sampled, none fits the "
     r"input \(e.g. blocks.1 conv: "),
    ("huge-value-echo", "space: s.yaml\ntuner: {kind: [" + ", ".join(["1"] * 5000) + "]}\n",
     r"2: tuner.kind: must be one of 'random', 'grid', 'bayesian', 'hyperband', 'tpe', got "
     r"\[1, 1, "),
]


def _validate(folder: Path, name: str, text: str | bytes) -> tuple[int, list[str], Path]:
    (folder / "s.yaml").write_text(SPACE)
    (folder / "wide.yaml").write_text(WIDE)
    (folder / "k9.yaml").write_text(KERNEL_9)
    path = folder / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)], prog_name="tunetrack")
    return result.exit_code, result.output.splitlines(), path


@pytest.mark.parametrize("name, text, message", YAML_CASES + PIPELINE_CASES,
                         ids=[c[0] for c in YAML_CASES + PIPELINE_CASES])
def test_hostile_file_gets_one_line_and_exit_2(tmp_path: Path, name: str, text: str | bytes,
                                                message: str) -> None:
    code, lines, path = _validate(tmp_path, name, text)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}:"), lines
    assert len(lines[0]) <= 1000
    import re

    assert re.search(message, lines[0][len(str(path)):]), lines[0][:400]


def test_the_corpus_is_large_enough() -> None:
    assert len(YAML_CASES) + len(PIPELINE_CASES) >= 40


def test_a_pipeline_that_search_accepts_is_ok(tmp_path: Path) -> None:
    code, lines, _ = _validate(tmp_path, "good", "space: s.yaml\n")
    assert code == 0 and lines[-1].endswith(": ok")


def test_a_missing_image_folder_is_a_note_not_an_error(tmp_path: Path) -> None:
    code, lines, path = _validate(tmp_path, "later", "space: s.yaml\ndata: {source: images}\n")
    assert code == 0, lines
    assert lines[0] == (f"{path}:2: data.source: note: image folder {tmp_path / 'images'} not "
                        f"found here: its classes and the fit of the space not checked")


def test_an_image_folder_is_checked_and_its_shape_used(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "images", classes={"a": 6, "b": 6}, formats=("png",))
    code, lines, _ = _validate(tmp_path, "folder", "space: s.yaml\ndata: {source: images, "
                                                   "image_size: [12, 12]}\n")
    assert code == 0, lines
    code, lines, path = _validate(tmp_path, "tight", "space: wide.yaml\nconstraints: "
                                                     "{max_params: 1000}\ndata: {source: images, "
                                                     "image_size: [12, 12]}\n")
    assert code == 2
    assert "no candidate fits 12×12×3 images and 2 classes: 200 sampled" in lines[0]


def test_many_problems_are_capped(tmp_path: Path) -> None:
    text = "family: cnn\n" + "".join(f"unknown{i}: 1\n" for i in range(100))
    code, lines, _ = _validate(tmp_path, "many", text)
    assert code == 2
    assert len(lines) == 21 and lines[-1] == "… and 80 more problems"
