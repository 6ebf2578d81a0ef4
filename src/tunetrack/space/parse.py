"""Parsing a space file into checked pieces; :mod:`tunetrack.space` assembles the ``Space``.

Every problem is collected with the line of its key, so a file is fixed in one pass.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tunetrack.errors import ConfigError, SpaceError, allowed_list, did_you_mean
from tunetrack.space import catalog
from tunetrack.space._config import Constraints
from tunetrack.space._groups import Group, count_key, parse_group
from tunetrack.space.dims import Dim, Report, coerce, parse_dim
from tunetrack.space.yamlio import Document, Key

__all__ = ["Constraints", "Group", "Problems", "count_key", "parse_document", "read_constraints"]

# Keys of the file itself, not hyperparameters. ``input_shape`` and ``classes`` are what the
# space is written for (a preset's published input); ``tunetrack plan`` uses them by default.
RESERVED = ("family", "description", "constraints", "input_shape", "classes")


class Problems:
    """Collects every problem of a file, each with the line of its key."""

    def __init__(self, doc: Document, at: Key) -> None:
        self.doc, self.at = doc, at
        self.items: list[ConfigError] = []

    def add(self, path: Key, key: str | None, message: str) -> None:
        self.items.append(SpaceError(message, file=self.doc.path,
                                     line=self.doc.line(*self.at, *path), key=key))

    def reporter(self, path: Key, key: str) -> Report:
        return lambda sub, message: self.add(path + sub, key, message)


def parse_document(doc: Document, at: Key = ()) -> dict[str, Any]:
    """The checked pieces of the space at key path ``at`` of ``doc``, or every problem raised."""
    data = doc.data
    for step in at:
        data = data[step]
    problems = Problems(doc, at)
    if not isinstance(data, dict):
        problems.add((), None, f"a space must be a mapping of keys, but got {data!r}")
        raise SpaceError("invalid space", file=doc.path, problems=problems.items)
    family = parse_family(data, problems)
    description = data.get("description") or ""
    if not isinstance(description, str):
        problems.add(("description",), "description",
                     f"expected a str, but got {description!r}")
    constraints = parse_constraints(data.get("constraints"), problems)
    top: dict[str, Dim] = {}
    groups: dict[str, Group] = {}
    if family is not None:
        schema = catalog.FAMILIES[family]
        for k, raw in data.items():
            if k in RESERVED:
                continue
            if k in schema.keys:
                dim = parse_dim(raw, schema.keys[k], str(k), problems.reporter((k,), str(k)))
                if dim is not None:
                    top[k] = dim
            elif k in schema.groups:
                parsed = parse_group(k, raw, schema.groups[k], problems.reporter)
                if parsed is not None:
                    groups[k] = parsed
            else:
                problems.add((k,), str(k), unknown_key(k, family, schema))
        for gname, group in schema.groups.items():
            if gname not in groups and gname not in data:
                count = Dim("fixed", int, group.count_default, values=(group.count_default,))
                groups[gname] = Group(count, False, {}, (group.count_default,))
    input_shape, classes = parse_input(data, problems)
    if problems.items:
        raise SpaceError("invalid space", file=doc.path, problems=problems.items)
    return {"family": family, "description": description, "constraints": constraints,
            "top": top, "groups": groups, "input_shape": input_shape, "classes": classes}


def parse_input(data: dict[str, Any], problems: Problems
                ) -> tuple[tuple[int, int, int] | None, int | None]:
    """``input_shape: [H, W, C]`` and ``classes: N``, both optional."""
    shape, classes = data.get("input_shape"), data.get("classes")
    if shape is not None:
        if not (isinstance(shape, list) and len(shape) == 3
                and all(coerce(int, v)[0] and coerce(int, v)[1] >= 1 for v in shape)):
            problems.add(("input_shape",), "input_shape",
                         f"expected [height, width, channels] of positive integers, but got "
                         f"{shape!r}")
            shape = None
        else:
            shape = tuple(int(v) for v in shape)
    if classes is not None:
        ok, n = coerce(int, classes)
        if not ok or n < 2:
            problems.add(("classes",), "classes",
                         f"expected a whole number of classes >= 2, but got {classes!r}")
            classes = None
        else:
            classes = n
    return shape, classes


def parse_family(data: dict, problems: Problems) -> str | None:
    allowed = allowed_list(catalog.FAMILIES)
    if "family" not in data:
        problems.add((), "family", f"missing required key 'family'; allowed: {allowed}")
        return None
    family = data["family"]
    if not isinstance(family, str):
        problems.add(("family",), "family",
                     f"expected a str, but got {family!r}; allowed: {allowed}")
        return None
    if family not in catalog.FAMILIES:
        problems.add(("family",), "family", f"unknown family {family!r}"
                     f"{did_you_mean(family, catalog.FAMILIES)}; allowed: {allowed}")
        return None
    return family


def unknown_key(k: Any, family: str, schema: catalog.FamilySchema) -> str:
    allowed = [*RESERVED, *schema.keys, *schema.groups]
    others = [f for f, s in catalog.FAMILIES.items() if k in s.keys or k in s.groups]
    if others:
        return (f"family {family!r} has no key {k!r} (it applies to {', '.join(others)})"
                f"{did_you_mean(k, allowed)}; allowed: {allowed_list(allowed)}")
    return f"unknown key {k!r}{did_you_mean(k, allowed)}; allowed: {allowed_list(allowed)}"


def parse_constraints(raw: Any, problems: Problems) -> Constraints:
    return read_constraints(raw, lambda sub, message: problems.add(
        ("constraints", *sub), ".".join(map(str, ("constraints", *sub))), message))


def read_constraints(raw: Any, report: Report) -> Constraints:
    """The ``constraints:`` section of a space or a pipeline file (the same rules in both);
    ``report(path below the section, message)`` receives each problem."""
    if raw is None:
        return Constraints()
    if not isinstance(raw, dict):
        report((), f"expected a mapping like {{max_params: 100000}}, but got {raw!r}")
        return Constraints()
    names = [f.name for f in fields(Constraints)]
    values = {}
    for k, v in raw.items():
        if k not in names:
            report((k,), f"unknown constraint {k!r}{did_you_mean(k, names)}; "
                         f"allowed: {allowed_list(names)}")
            continue
        if v is None:
            continue
        ok, n = coerce(int, v)
        if not ok or n < 1:
            report((k,), f"a constraint must be a positive integer, but got {v!r}")
            continue
        values[k] = n
    return Constraints(**values)
