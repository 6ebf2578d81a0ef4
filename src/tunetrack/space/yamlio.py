"""Safe YAML reading that remembers the line of every key, so messages can say ``FILE:LINE``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunetrack.errors import ConfigError

Key = tuple  # a path of mapping keys / sequence indices from the document root


@dataclass
class Document:
    """A parsed YAML file: plain Python ``data`` and the 1-based line of each key path."""

    path: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, *key: object) -> int | None:
        """The line of ``key``, or of its closest ancestor that has one."""
        key = tuple(key)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)


_SCALARS = yaml.SafeLoader("")  # only its constructor is used, on scalar nodes


def _construct(node: yaml.Node, path: Key, doc: Document, error: type[ConfigError]) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, path + ("<key>",), doc, error)
            if isinstance(key, (list, dict)):
                raise error("a mapping key must be a plain value", file=doc.path,
                            line=key_node.start_mark.line + 1)
            if key in out:
                raise error(f"duplicate key {key!r} (first given on line "
                            f"{doc.lines[path + (key,)]})", file=doc.path,
                            line=key_node.start_mark.line + 1,
                            key=".".join(map(str, path + (key,))))
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), doc, error)
        doc.lines.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, error) for i, item in enumerate(node.value)]
    # Scalars: let the safe constructor resolve ints, floats, bools, nulls.
    return _SCALARS.construct_object(node, deep=True)


def load_yaml(path: str | Path, *, error: type[ConfigError] = ConfigError) -> Document:
    """Read ``path`` with PyYAML's safe loader; syntax errors and duplicate keys raise ``error``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the file: {exc}", file=str(path)) from None
    doc = Document(str(path), None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise error(f"YAML syntax error: {exc.problem or exc}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", file=str(path)) from None
    if node is None:
        raise error("the file is empty", file=str(path), line=1)
    try:
        doc.data = _construct(node, (), doc, error)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"unsupported YAML value: {exc.problem}", file=str(path), line=line) from None
    return doc
