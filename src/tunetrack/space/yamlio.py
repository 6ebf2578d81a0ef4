"""Safe, bounded YAML reading that remembers the line of every key, so messages say ``FILE:LINE``.

:func:`load_yaml` is the one path every tunetrack file is read through. It promises: plain
Python data (dicts, lists, scalars) from PyYAML's safe resolver; the 1-based line of every key
path in :attr:`Document.lines`; and an ``error`` (a :class:`~tunetrack.errors.ConfigError`
subclass with file and line) instead of any PyYAML exception, for a missing or unreadable file,
a syntax error, an empty file, several documents, a duplicate key, a key that is a list or
mapping, a merge key (``<<``) or any tag (``!!set``, ``!!python/...``, ``!custom``).

Hostile files are refused early and cheaply (:class:`Limits`): the file is read up to its size
limit only, the document is composed from libyaml's events without recursion and with every
limit checked as events arrive, and aliases are counted and expanded under a budget, so the
"billion laughs", a self-referencing alias, 10 MB of keys or 100,000 nested brackets each end
in one line within a fraction of a second. Whether the data is a mapping is the caller's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from tunetrack.errors import ConfigError

__all__ = ["LIMITS", "Document", "Key", "Limits", "load_yaml"]

Key: TypeAlias = tuple[Any, ...]  # a path of mapping keys / sequence indices from the root

_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
# libyaml's parser when PyYAML was built with it (about 10x faster), else the pure-Python one.
_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Limits:
    """What one YAML file may hold. A real pipeline or space file is a few KiB with a few
    hundred values; each limit is far above that and far below what costs a user time."""

    max_bytes: int = 1 << 20  # file size
    max_depth: int = 32  # lists and mappings nested in one another
    max_items: int = 10_000  # entries of one list or mapping
    max_keys: int = 2_000  # mapping keys in the whole file
    max_aliases: int = 100  # ``*name`` references
    max_values: int = 20_000  # values in the file, and once every alias is expanded


LIMITS = Limits()


def _short(tag: str) -> str:
    """``!!set`` for ``tag:yaml.org,2002:set``: the tag as the file wrote it."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


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


class _Refused(Exception):
    """A limit or rule broken while composing; becomes the caller's error with a line."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.line = message, (mark.line + 1 if mark is not None else None)


class _Composer:
    """Nodes from parser events, iteratively (no recursion), checking :class:`Limits` as each
    event arrives; like PyYAML's composer, an alias is the very node its anchor names."""

    def __init__(self, loader: Any, limits: Limits) -> None:
        self.loader, self.limits = loader, limits
        self.anchors: dict[str, yaml.Node] = {}
        self.tagged: set[int] = set()  # ids of nodes whose tag the file wrote
        self.aliases = self.keys = self.values = 0

    def compose(self) -> yaml.Node | None:
        loader: Any = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        start = loader.get_event()  # document start
        root = self._document()
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", start.start_mark,
                "but found another document", loader.get_event().start_mark)
        return root

    def _new(self, event: Any, kind: type[yaml.Node], value: Any) -> yaml.Node:
        limits = self.limits
        self.values += 1
        if self.values > limits.max_values:
            raise _Refused(f"too many values (limit {limits.max_values:,})", event.start_mark)
        tag = event.tag if event.tag not in (None, "!") else None
        node = kind(tag or self.loader.resolve(kind, value, event.implicit), value,
                    event.start_mark, event.end_mark)
        if event.tag is not None:  # refused by the builder, which knows the key path
            self.tagged.add(id(node))
        if event.anchor is not None:
            if event.anchor in self.anchors:
                raise yaml.composer.ComposerError(
                    f"found duplicate anchor {event.anchor!r}; first occurrence",
                    self.anchors[event.anchor].start_mark, "second occurrence", event.start_mark)
            self.anchors[event.anchor] = node
        return node

    def _document(self) -> yaml.Node:
        limits, loader = self.limits, self.loader
        event: Any
        # open collections: [node, pending mapping key or None]
        stack: list[list[Any]] = []
        while True:
            event = loader.get_event()
            node: Any
            mark: Any = event.start_mark  # libyaml's Mark or PyYAML's
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in self.anchors:
                    raise yaml.composer.ComposerError(
                        None, None, f"found undefined alias {event.anchor!r}", mark)
                self.aliases += 1
                if self.aliases > limits.max_aliases:
                    raise _Refused(f"too many aliases (limit {limits.max_aliases:,})",
                                   event.start_mark)
                node = self.anchors[event.anchor]
            elif isinstance(event, yaml.ScalarEvent):
                node = self._new(event, yaml.ScalarNode, event.value)
                node.style = event.style
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= limits.max_depth:
                    raise _Refused(f"nested too deeply (limit {limits.max_depth} levels)",
                                   event.start_mark)
                kind = (yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent)
                        else yaml.MappingNode)
                stack.append([self._new(event, kind, []), None])
                continue
            else:  # the end of a list or mapping
                node = stack.pop()[0]
                node.end_mark = event.end_mark
            if not stack:
                return node
            frame = stack[-1]
            parent = frame[0]
            if isinstance(parent, yaml.SequenceNode):
                parent.value.append(node)
            elif frame[1] is None:
                frame[1] = node
                self.keys += 1
                if self.keys > limits.max_keys:
                    raise _Refused(f"too many keys (limit {limits.max_keys:,})",
                                   event.start_mark)
                continue
            else:
                parent.value.append((frame[1], node))
                frame[1] = None
            if len(parent.value) > limits.max_items:
                what = "list" if isinstance(parent, yaml.SequenceNode) else "mapping"
                raise _Refused(f"a {what} with too many entries (limit {limits.max_items:,})",
                               parent.start_mark)


class _Builder:
    """Turns a composed node tree into plain data, recording lines, refusing what
    :func:`load_yaml` promises to refuse, and expanding aliases under the values budget."""

    def __init__(self, doc: Document, error: type[ConfigError], composer: _Composer) -> None:
        self.doc, self.error = doc, error
        self.limits, self.tagged = composer.limits, composer.tagged
        self.built = 0
        self.open: set[int] = set()  # the collections being built: an alias to one is a cycle
        # Only the constructor of a fresh loader is used, on scalar nodes; fresh per file, since
        # a loader keeps every node it constructed.
        self.scalars = yaml.SafeLoader("")

    def fail(self, message: str, node: yaml.Node, key: Key | None = None) -> ConfigError:
        return self.error(message, file=self.doc.path, line=node.start_mark.line + 1,
                          key=".".join(map(str, key)) if key else None)

    def build(self, node: yaml.Node, path: Key) -> Any:
        self.built += 1
        if self.built > self.limits.max_values:
            raise self.fail(f"too many values once aliases are expanded (limit "
                            f"{self.limits.max_values:,})", node)
        if len(path) > self.limits.max_depth:
            raise self.fail(f"nested too deeply once aliases are expanded (limit "
                            f"{self.limits.max_depth} levels)", node)
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            if id(node) in self.tagged:
                raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a value; write "
                                f"a plain value", node, path)
            # let the safe constructor resolve ints, floats, bools, nulls
            value = self.scalars.construct_object(node, deep=True)
            if isinstance(value, float) and not abs(value) < float("inf"):
                raise self.fail(f"{node.value!r} is not a finite number; write a number",
                                node, path)
            return value
        if id(node) in self.tagged:  # a tag the file wrote on a list or mapping, even !!map
            what = "mapping" if isinstance(node, yaml.MappingNode) else "list"
            raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a {what}; write a "
                            f"plain {what}", node, path)
        if id(node) in self.open:
            raise self.fail("an alias refers to the list or mapping that contains it (a "
                            "recursive structure)", node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP:
                    raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a mapping; "
                                    f"write a plain mapping", node, path)
                return self._mapping(node, path)
            if node.tag != _SEQ:
                raise self.fail(f"unsupported YAML tag {_short(node.tag)!r} on a list; "
                                f"write a plain list", node, path)
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

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


def _pure_python_error(text: str, limits: Limits) -> Exception | None:
    """PyYAML's own wording of a syntax error libyaml found (``expected ',' or ']', but got
    '<stream end>'``), which users and editors know; parsing again costs ~0.3 s per MiB."""
    if _LOADER is yaml.SafeLoader:
        return None
    loader = yaml.SafeLoader(text)
    try:
        _Composer(loader, limits).compose()
    except (yaml.MarkedYAMLError, _Refused) as exc:
        return exc  # a limit broken before the syntax error: that limit is the answer
    finally:
        loader.dispose()
    return None


def _read(path: Path, limits: Limits, error: type[ConfigError]) -> str:
    """The file's text, reading no more than the size limit allows (a FIFO or ``/dev/zero``
    is refused as too large, not read forever)."""
    try:
        with path.open("rb") as f:
            raw = f.read(limits.max_bytes + 1)
            if len(raw) > limits.max_bytes:
                size = path.stat().st_size
                got = f"{size:,} bytes, " if size > limits.max_bytes else ""
                raise error(f"too large ({got}limit {_size(limits.max_bytes)})", file=str(path))
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise error("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the file: {exc}", file=str(path)) from None


def load_yaml(path: str | Path, *, error: type[ConfigError] = ConfigError,
              limits: Limits = LIMITS) -> Document:
    """Read ``path`` with PyYAML's safe resolver; every problem raises ``error`` with a line."""
    path = Path(path)
    text = _read(path, limits, error)
    loader = _LOADER(text)
    composer = _Composer(loader, limits)
    try:
        node = composer.compose()
    except _Refused as refused:
        raise error(refused.message, file=str(path), line=refused.line) from None
    except yaml.MarkedYAMLError as exc:
        first = _pure_python_error(text, limits) or exc
        if isinstance(first, _Refused):
            raise error(first.message, file=str(path), line=first.line) from None
        exc = first if isinstance(first, yaml.MarkedYAMLError) else exc
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise error(f"YAML syntax error: {_syntax_message(exc)}", file=str(path),
                    line=line) from None
    except yaml.reader.ReaderError as exc:  # a control character, say
        where = text.count("\n", 0, max(exc.position, 0)) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        character = f"#x{code:04x}" if isinstance(code, int) else repr(code)
        raise error(f"YAML syntax error: unacceptable character {character} ({exc.reason})",
                    file=str(path), line=where) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {' '.join(str(exc).split())}", file=str(path)) from None
    finally:
        loader.dispose()
    if node is None:
        raise error("the file is empty", file=str(path), line=1)
    doc = Document(str(path), None)
    try:
        doc.data = _Builder(doc, error, composer).build(node, ())
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"unsupported YAML value: {exc.problem}", file=str(path), line=line) from None
    return doc
