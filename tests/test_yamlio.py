"""``load_yaml``: plain data, the line of every key, and one error type with FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetrack.errors import ConfigError, PipelineError, SpaceError
from tunetrack.space.language import load_space
from tunetrack.space.pipeline import load_pipeline
from tunetrack.space.yamlio import Document, load_yaml


def write(tmp_path: Path, text: str | bytes, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


NESTED = """\
# a comment, then a blank line

name: demo
tuner:
  kind: random
  options:
    seed: 7

    budget: [1, 2]
items:
  - first
  - {key: value}
"""


# -- data and lines ------------------------------------------------------------------------------
def test_plain_data_and_the_line_of_every_key(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, NESTED))
    assert isinstance(doc, Document) and doc.path == str(tmp_path / "f.yaml")
    assert doc.data == {"name": "demo",
                        "tuner": {"kind": "random", "options": {"seed": 7, "budget": [1, 2]}},
                        "items": ["first", {"key": "value"}]}
    assert doc.line("name") == 3
    assert doc.line("tuner") == 4
    assert doc.line("tuner", "kind") == 5
    assert doc.line("tuner", "options", "seed") == 7
    assert doc.line("tuner", "options", "budget") == 9
    assert doc.line("items", 0) == 11
    assert doc.line("items", 1, "key") == 12


def test_line_falls_back_to_the_closest_ancestor_then_the_root(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, NESTED))
    assert doc.line("tuner", "options", "missing") == 6
    assert doc.line("tuner", "missing", "deeper") == 4
    assert doc.line("items", 5) == 10
    assert doc.line("missing") == 3  # the root: its first content line, after the comments
    assert doc.line() == 3
    assert Document("x.yaml", None).line("anything") == 1  # no lines at all: line 1


def test_yaml_11_scalars_and_aliases(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, "a: 1e-4\nb: 1.0e-4\nc: yes\nd: ~\ne: &x [1, 2]\nf: *x\n"
                                    "'3': 3\n"))
    assert doc.data == {"a": "1e-4", "b": 1.0e-4, "c": True, "d": None, "e": [1, 2],
                        "f": [1, 2], "3": 3}
    assert doc.line("f") == 6


@pytest.mark.parametrize("text, data", [("- 1\n- two\n", [1, "two"]), ("just text\n", "just text"),
                                        ("42\n", 42)])
def test_a_document_need_not_be_a_mapping(tmp_path: Path, text: str, data: object) -> None:
    assert load_yaml(write(tmp_path, text)).data == data


# -- errors --------------------------------------------------------------------------------------
ERRORS = [
    ("a: 1\nb: 2\na: 3\n", r"f.yaml:3: a: duplicate key 'a' \(first given on line 1\)$"),
    ("top:\n  x: 1\n  y: 2\n  x: 3\n",
     r"f.yaml:4: top.x: duplicate key 'x' \(first given on line 2\)$"),
    ("a: 1\nb:\n  c: [1, 2\n",
     r"f.yaml:4: YAML syntax error: expected ',' or ']', but got '<stream end>' \(while parsing "
     r"a flow sequence started on line 3\)$"),
    ("a: 1\n  b: 2\n", r"f.yaml:2: YAML syntax error: mapping values are not allowed here$"),
    ("a: 1\n---\nb: 2\n",
     r"f.yaml:2: YAML syntax error: expected a single document in the stream, but found another "
     r"document$"),
    ("a: *nowhere\n", r"f.yaml:1: YAML syntax error: found undefined alias 'nowhere'$"),
    ("", r"f.yaml:1: the file is empty$"),
    ("# only a comment\n\n", r"f.yaml:1: the file is empty$"),
    ("? [a, b]\n: 1\n", r"f.yaml:1: a mapping key must be a plain value, not a list or mapping$"),
    ("x:\n  ? {a: 1}\n  : 1\n",
     r"f.yaml:2: x: a mapping key must be a plain value, not a list or mapping$"),
    ("base: &b {x: 1}\nother:\n  <<: *b\n",
     r"f.yaml:3: other.<<: merge keys \('<<'\) are not supported; write the keys out$"),
    ("a: !!set {x, y}\n",
     r"f.yaml:1: a: unsupported YAML tag '!!set' on a mapping; write a plain mapping$"),
    ("a:\n  b: !!omap [{k: 1}]\n",
     r"f.yaml:2: a.b: unsupported YAML tag '!!omap' on a list; write a plain list$"),
    ("a: !custom 3\n", r"f.yaml:1: a: unsupported YAML tag '!custom' on a value; write a "
                       r"plain value$"),
    ("a: !!python/object:os.system {}\n",
     r"f.yaml:1: a: unsupported YAML tag '!!python/object:os.system' on a mapping"),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[m[8:48] for _, m in ERRORS])
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_yaml(write(tmp_path, text))
    assert info.value.file == str(tmp_path / "f.yaml")
    assert info.value.line is not None
    # no PyYAML traceback chained below the message
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: file not found$"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"f.yaml: cannot read the file: 'utf-8' codec can't "
                                          r"decode byte 0xff"):
        load_yaml(write(tmp_path, b"a: \xff\n"))
    with pytest.raises(ConfigError, match=r"cannot read the file: .*Is a directory"):
        load_yaml(tmp_path)


@pytest.mark.parametrize("error", [SpaceError, PipelineError])
def test_errors_have_the_type_the_caller_asks_for(tmp_path: Path,
                                                  error: type[ConfigError]) -> None:
    with pytest.raises(error, match=r"duplicate key 'a'"):
        load_yaml(write(tmp_path, "a: 1\na: 2\n"), error=error)
    with pytest.raises(error, match=r"file not found"):
        load_yaml(tmp_path / "nope.yaml", error=error)
    with pytest.raises(error, match=r"YAML syntax error"):
        load_yaml(write(tmp_path, "a: [\n"), error=error)


def test_default_error_is_config_error_not_a_subclass(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(write(tmp_path, "a: 1\na: 2\n"))
    assert type(info.value) is ConfigError


# -- non-mapping documents, as the loaders see them ----------------------------------------------
@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("hello\n", "str")])
def test_pipeline_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(PipelineError, match=rf"f.yaml:1: a pipeline must be a mapping of keys, "
                                            rf"got {kind}$"):
        load_pipeline(write(tmp_path, text))


def test_space_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"f.yaml:2: a space must be a mapping of keys, but got "
                                         r"\['cnn'\]$"):
        load_space(write(tmp_path, "# a space\n- cnn\n"))
