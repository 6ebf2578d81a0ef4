"""Safe YAML reading that remembers the line of every key, so messages can say ``FILE:LINE``.

:func:`load_yaml` promises: plain Python data (dicts, lists, scalars) from PyYAML's safe
resolver; the 1-based line of every key path in :attr:`Document.lines`; and an ``error`` (a
:class:`~tunetrack.errors.ConfigError` subclass with file and line) instead of any PyYAML
exception, for a missing or unreadable file, a syntax error, an empty file, several documents,
a duplicate key, a key that is a list or mapping, a merge key (``<<``) or an unsupported tag.
Whether the data is a mapping is the caller's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from tunetrack.errors import ConfigError

__all__ = ["Document", "Key", "load_yaml"]

Key: TypeAlias = tuple[Any, ...]  # a path of mapping keys / sequence indices from the root

_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


def _short(tag: str) -> str:
    """``!!set`` for ``tag:yaml.org,2002:set``: the tag as the file wrote it."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


@dataclass
class Document:
    """A parsed YAML file: plain Python ``data`` and the 1-based line of each key path."""

    path: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, *key: object) -> int | None:
        """The line of ``key``, or of its closest ancestor that has one (the root: line 1)."""
        path = tuple(key)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


class _Builder:
    """Turns a composed node tree into plain data, recording lines and refusing what
    :func:`load_yaml` promises to refuse."""

    def __init__(self, doc: Document, error: type[ConfigError]) -> None:
        self.doc, self.error = doc, error
        # Only the constructor of a fresh loader is used, on scalar nodes; fresh per file, since
        # a loader keeps every node it constructed.
        self.scalars = yaml.SafeLoader("")

    def fail(self, message: str, node: yaml.Node, key: Key | None = None) -> ConfigError:
        return self.error(message, file=self.doc.path, line=node.start_mark.line + 1,
                          key=".".join(map(str, key)) if key else None)

    def build(self, node: yaml.Node, path: Key) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a mapping; "
                                f"write a plain mapping", node, path)
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a list; "
                                f"write a plain list", node, path)
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        # Scalars: let the safe constructor resolve ints, floats, bools, nulls.
        return self.scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Key) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise self.fail("merge keys ('<<') are not supported; write the keys out",
                                key_node, path + ("<<",))
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail("a mapping key must be a plain value, not a list or mapping",
                                key_node, path)
            key = self.build(key_node, path + ("<key>",))
            if key in out:
                raise self.fail(f"duplicate key {key!r} (first given on line "
                                f"{self.doc.lines[path + (key,)]})", key_node, path + (key,))
            self.doc.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,))
        self.doc.lines.pop(path + ("<key>",), None)
        return out


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with its context: ``expected ',' or ']', but got '<stream end>'
    (while parsing a flow sequence started on line 3)``."""
    problem = exc.problem or str(exc)
    if not exc.context:
        return problem
    if exc.context.startswith("while") and exc.context_mark is not None:
        return f"{problem} ({exc.context} started on line {exc.context_mark.line + 1})"
    return f"{exc.context}, {problem}"


def load_yaml(path: str | Path, *, error: type[ConfigError] = ConfigError) -> Document:
    """Read ``path`` with PyYAML's safe resolver; every problem raises ``error`` with a line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the file: {exc}", file=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise error(f"YAML syntax error: {_syntax_message(exc)}", file=str(path),
                    line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", file=str(path)) from None
    if node is None:
        raise error("the file is empty", file=str(path), line=1)
    doc = Document(str(path), None)
    try:
        doc.data = _Builder(doc, error).build(node, ())
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"unsupported YAML value: {exc.problem}", file=str(path), line=line) from None
    return doc
