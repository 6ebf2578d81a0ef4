"""A repeated part of a network as a space file writes it: ``count`` elements and their keys.

A group key takes one of three forms:

- one value spec, shared by every element: ``filters: {choice: [16, 32]}`` (each element
  still gets its own hyperparameter, ``blocks.1.filters``, ``blocks.2.filters``, ...);
- a list, one entry per element, each entry a value spec of its own:
  ``filters: [64, 128, {choice: [256, 512]}]``;
- a growth rule for whole numbers: ``filters: {start: 64, grow: 2, max: 512}`` gives 64, 128,
  256, 512, 512... (``round(start · grow^(i−1))``, at most ``max``); ``start`` may be searched,
  and is then the hyperparameter ``blocks.filters.start``.

Without ``count`` a group has as many elements as its lists have entries (they must agree), or,
with no list, at least one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from tunetrack.errors import allowed_list, did_you_mean
from tunetrack.space import catalog
from tunetrack.space.dims import KINDS, Dim, Report, number, parse_dim

__all__ = ["Group", "Growth", "Spec", "count_key", "element_dim", "growth_name", "parse_group"]

GROWTH_KEYS = ("start", "grow", "max")


@dataclass(frozen=True)
class Growth:
    """``start · grow^(i−1)``, rounded, at most ``max``: one line for "double at each stage"."""

    start: Dim
    grow: float
    max: int | None = None

    def value(self, start: int, index: int) -> int:
        out = max(1, round(start * self.grow ** (index - 1)))
        return min(out, self.max) if self.max is not None else out

    def describe(self) -> str:
        cap = f", max: {self.max}" if self.max is not None else ""
        return f"{{start: {self.start.describe()}, grow: {self.grow:g}{cap}}}"


Spec: TypeAlias = Dim | tuple[Dim, ...] | Growth  # shared, per element, or a growth rule


@dataclass(frozen=True)
class Group:
    """A group as the space sets it; ``counts`` lists every count the space can give."""

    count: Dim
    count_set: bool
    keys: dict[str, Spec]
    counts: tuple[int, ...]


def count_key(group: catalog.Group) -> catalog.Key:
    return catalog.Key(int, group.count_default, low=group.count_low)


def growth_name(gname: str, key: str) -> str:
    """``blocks.filters.start``: the hyperparameter of a growth rule's searched start."""
    return f"{gname}.{key}.start"


def element_dim(spec: Spec, index: int) -> Dim | None:
    """The value spec of element ``index`` (1-based); None where a growth rule derives it."""
    if isinstance(spec, Growth):
        return None
    if isinstance(spec, tuple):
        return spec[index - 1] if index <= len(spec) else None
    return spec


def _fixed(value: int) -> Dim:
    return Dim("fixed", int, value, values=(value,))


def parse_group(gname: str, raw: Any, group: catalog.Group,
                reporter: Any) -> Group | None:
    """A group is a mapping of ``count`` and element keys, or just its count (``dense: 0``).

    ``reporter(path, key)`` gives the :data:`Report` for a path below the space's root.
    """
    note = f" (the minimum count of group {gname!r})"
    mapping = isinstance(raw, dict)
    if not mapping:
        raw = {"count": raw}
    report = reporter((gname, "count") if mapping else (gname,), f"{gname}.count")
    count = None
    keys: dict[str, Spec] = {}
    ok = True
    for k, value in raw.items():
        if k == "count":
            count = parse_dim(value, count_key(group), "count", report, note)
            ok &= count is not None
        elif k in group.keys:
            spec = _parse_spec(gname, str(k), value, group.keys[k], reporter)
            if spec is None:
                ok = False
            else:
                keys[k] = spec
        else:
            allowed = ("count", *group.keys)
            hint = f"; write count: {{{k}: ...}} for the number of elements" if k in KINDS else ""
            reporter((gname, k), f"{gname}.{k}")((), f"unknown key {k!r} in group {gname!r}"
                                                 f"{did_you_mean(k, allowed)}; allowed: "
                                                 f"{allowed_list(allowed)}{hint}")
            ok = False
    if not ok:
        return None
    lists = {k: len(v) for k, v in keys.items() if isinstance(v, tuple)}
    count_set = count is not None
    if count is None:
        if lists and len(set(lists.values())) > 1:
            report((), f"the lists of group {gname!r} disagree on its number of elements: "
                   f"{', '.join(f'{k} has {n}' for k, n in lists.items())}; make them equal "
                   "or write count")
            return None
        n = next(iter(lists.values())) if lists else max(group.count_default,
                                                         1 if keys else 0)
        count = _fixed(n)
    counts = count.finite_values()
    if counts is None:  # pragma: no cover - a count is an int, so its values are finite
        raise AssertionError(f"group {gname!r}: count {count} has no finite values")
    counts = tuple(sorted(counts))
    for k, n in lists.items():
        if count.kind == "fixed" and n != counts[0]:
            reporter((gname, k), f"{gname}.{k}")((), f"a list of {n} entries, but {gname}.count "
                                                 f"is {counts[0]}: give one entry per element")
            ok = False
        elif n < counts[-1]:
            reporter((gname, k), f"{gname}.{k}")((), f"a list of {n} entries, but {gname}.count "
                                                 f"can be {counts[-1]}: give an entry for every "
                                                 "element up to the largest count")
            ok = False
    if not ok:
        return None
    return Group(count, count_set, keys, counts)


def _parse_spec(gname: str, k: str, value: Any, key: catalog.Key, reporter: Any) -> Spec | None:
    if isinstance(value, list):
        if not value:
            reporter((gname, k), f"{gname}.{k}")((), "an empty list; give one entry per element")
            return None
        dims = [parse_dim(item, key, k, reporter((gname, k, i), f"{gname}.{i + 1}.{k}"))
                for i, item in enumerate(value)]
        return None if any(d is None for d in dims) else tuple(d for d in dims if d is not None)
    if isinstance(value, dict) and "start" in value:
        return _parse_growth(value, key, reporter((gname, k), f"{gname}.{k}"))
    return parse_dim(value, key, k, reporter((gname, k), f"{gname}.{k}"))


def _parse_growth(raw: dict[str, Any], key: catalog.Key, report: Report) -> Growth | None:
    problems = []

    def fail(sub: tuple[Any, ...], message: str) -> None:
        problems.append(message)
        report(sub, message)

    if key.type is not int:
        fail((), f"a growth rule {{start, grow, max}} applies to whole-number keys; this key "
                 f"takes {key.type.__name__} values")
        return None
    for option in raw:
        if option not in GROWTH_KEYS:
            fail((option,), f"unknown option {option!r} of a growth rule"
                            f"{did_you_mean(option, GROWTH_KEYS)}; allowed: "
                            f"{allowed_list(GROWTH_KEYS)}")
    start = parse_dim(raw["start"], key, "start", lambda sub, m: fail(("start", *sub), m))
    grow = number(raw.get("grow", 1))
    if grow is None or grow <= 0:
        fail(("grow",), f"grow must be a number > 0 (2 doubles at each element), but got "
                        f"{raw.get('grow')!r}")
    cap = raw.get("max")
    top = number(cap) if cap is not None else None
    if cap is not None and (top is None or not float(top).is_integer() or top < 1):
        fail(("max",), f"max must be a whole number >= 1, but got {cap!r}")
    if problems or start is None or grow is None:
        return None
    return Growth(start, float(grow), int(top) if top is not None else None)
