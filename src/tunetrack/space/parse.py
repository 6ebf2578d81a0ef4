"""Parsing a space file into checked pieces; :mod:`tunetrack.space` assembles the ``Space``.

Every problem is collected with the line of its key, so a file is fixed in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from tunetrack.errors import SpaceError, allowed_list, did_you_mean
from tunetrack.space import catalog
from tunetrack.space.dims import KINDS, Dim, coerce, parse_dim
from tunetrack.space.yamlio import Document

RESERVED = ("family", "description", "constraints")


@dataclass(frozen=True)
class Constraints:
    """Limits a candidate must meet before it is trained; None means no limit."""

    max_params: int | None = None
    min_feature_map: int | None = None
    max_flops: int | None = None

    def merged(self, other: Any) -> Constraints:
        """These limits with ``other``'s set ones winning (a pipeline overrides its space)."""
        if other is None:
            return self
        given = {f.name: getattr(other, f.name, None) for f in fields(self)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


@dataclass(frozen=True)
class Group:
    """A group as the space sets it; ``counts`` lists every count the space can give."""

    count: Dim
    count_set: bool
    keys: dict[str, Dim]
    counts: tuple[int, ...]


def count_key(group: catalog.Group) -> catalog.Key:
    return catalog.Key(int, group.count_default, low=group.count_low)


class Problems:
    """Collects every problem of a file, each with the line of its key."""

    def __init__(self, doc: Document, at: tuple) -> None:
        self.doc, self.at, self.items = doc, at, []

    def add(self, path: tuple, key: str | None, message: str) -> None:
        self.items.append(SpaceError(message, file=self.doc.path,
                                     line=self.doc.line(*self.at, *path), key=key))

    def reporter(self, path: tuple, key: str):
        return lambda sub, message: self.add(path + sub, key, message)


def parse_document(doc: Document, at: tuple = ()) -> dict[str, Any]:
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
                group = parse_group(k, raw, schema.groups[k], problems)
                if group is not None:
                    groups[k] = group
            else:
                problems.add((k,), str(k), unknown_key(k, family, schema))
        for gname, group in schema.groups.items():
            if gname not in groups and gname not in data:
                count = Dim("fixed", int, group.count_default, values=(group.count_default,))
                groups[gname] = Group(count, False, {}, (group.count_default,))
    if problems.items:
        raise SpaceError("invalid space", file=doc.path, problems=problems.items)
    return {"family": family, "description": description, "constraints": constraints,
            "top": top, "groups": groups}


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


def parse_group(gname: str, raw: Any, group: catalog.Group, problems: Problems) -> Group | None:
    """A group is a mapping of ``count`` and element keys, or just its count (``dense: 0``)."""
    note = f" (the minimum count of group {gname!r})"
    if not isinstance(raw, dict):
        raw = {"count": raw}
        report = problems.reporter((gname,), f"{gname}.count")
    else:
        report = problems.reporter((gname, "count"), f"{gname}.count")
    count = None
    keys: dict[str, Dim] = {}
    ok = True
    for k, value in raw.items():
        if k == "count":
            count = parse_dim(value, count_key(group), "count", report, note)
            ok &= count is not None
        elif k in group.keys:
            dim = parse_dim(value, group.keys[k], str(k),
                            problems.reporter((gname, k), f"{gname}.{k}"))
            ok &= dim is not None
            keys[k] = dim
        else:
            allowed = ("count", *group.keys)
            hint = f"; write count: {{{k}: ...}} for the number of elements" if k in KINDS else ""
            problems.add((gname, k), f"{gname}.{k}", f"unknown key {k!r} in group {gname!r}"
                         f"{did_you_mean(k, allowed)}; allowed: {allowed_list(allowed)}{hint}")
            ok = False
    if not ok:
        return None
    count_set = count is not None
    if count is None:
        count = Dim("fixed", int, group.count_default, values=(group.count_default,))
    return Group(count, count_set, keys, tuple(sorted(count.finite_values())))


def parse_constraints(raw: Any, problems: Problems) -> Constraints:
    if raw is None:
        return Constraints()
    if not isinstance(raw, dict):
        problems.add(("constraints",), "constraints",
                     f"expected a mapping like {{max_params: 100000}}, but got {raw!r}")
        return Constraints()
    names = [f.name for f in fields(Constraints)]
    values = {}
    for k, v in raw.items():
        key = f"constraints.{k}"
        if k not in names:
            problems.add(("constraints", k), key, f"unknown constraint {k!r}"
                         f"{did_you_mean(k, names)}; allowed: {allowed_list(names)}")
            continue
        if v is None:
            continue
        ok, n = coerce(int, v)
        if not ok or n < 1:
            problems.add(("constraints", k), key, f"a constraint must be a positive integer, "
                         f"but got {v!r}")
            continue
        values[k] = n
    return Constraints(**values)
