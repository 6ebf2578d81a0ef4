"""The search-space language: a YAML file of one family's keys, each fixed or searched.

``load_space`` validates the whole file and reports every problem at once (``FILE:LINE: key:
message``). A :class:`Space` then maps onto keras-tuner (``declare``), samples by itself
(``sample``, used by ``tunetrack plan`` without TensorFlow) and turns any partial set of values
into a complete candidate (``complete``). keras_tuner is imported by nobody here: ``declare``
only calls methods of the ``HyperParameters`` it is given.

Only the keys a file writes become keras-tuner hyperparameters; the others take their catalog
default in the candidate. An element key that the file leaves out and that ``inherit``s (a dense
layer's ``activation``) follows the top-level value, searched or not.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

from tunetrack.errors import ConfigError, SpaceError, allowed_list, did_you_mean
from tunetrack.space import catalog
from tunetrack.space._groups import Growth, Spec, element_dim, growth_name
from tunetrack.space.dims import Dim, bounds_problem, coerce, tidy, type_problem
from tunetrack.space.parse import Constraints, Group, count_key, parse_document
from tunetrack.space.yamlio import Document, Key, load_yaml

__all__ = ["Constraints", "Space", "load_space", "space_from_document"]

_SET = "--set"  # the "file" of problems found in ``override`` assignments
# (group, element index, key) of a name; index 0 names a growth rule's start
_Where: TypeAlias = tuple[str | None, int | None, str]


@dataclass(frozen=True)
class _Param:
    """One keras-tuner hyperparameter; an element is active when its count is in ``when``."""

    name: str
    dim: Dim
    group: str | None = None
    when: tuple[int, ...] | None = None


class Space:
    """A validated search space of one family. Build it with :func:`load_space`."""

    def __init__(self, *, path: str, family: str, description: str,
                 constraints: Constraints, top: dict[str, Dim], groups: dict[str, Group],
                 input_shape: tuple[int, int, int] | None = None,
                 classes: int | None = None) -> None:
        self.path, self.family, self.description = path, family, description
        self.constraints = constraints
        self.input_shape, self.classes = input_shape, classes
        self.pins: dict[str, str] = {}  # what --set fixed (see pinned)
        self._schema = catalog.FAMILIES[family]
        self._top, self._groups = top, groups
        self._params = self._build_params()

    def __repr__(self) -> str:
        return f"Space(path={self.path!r}, family={self.family!r}, searched={self.searched()})"

    def _build_params(self) -> list[_Param]:
        """Declaration order: top-level keys, then per group its count and element by element.

        A count precedes its elements, which keras-tuner's oracles need to decide activity.
        """
        params = [_Param(k, self._top[k]) for k in self._schema.keys if k in self._top]
        for gname, group in self._schema.groups.items():
            g = self._groups[gname]
            if g.count_set:
                params.append(_Param(gname, g.count))
            params += [_Param(growth_name(gname, k), spec.start)
                       for k, spec in g.keys.items() if isinstance(spec, Growth)]
            for i in range(1, max(g.counts) + 1):
                when = None if i <= min(g.counts) else tuple(c for c in g.counts if c >= i)
                for k in group.keys:
                    dim = element_dim(g.keys[k], i) if k in g.keys else None
                    if dim is not None:
                        params.append(_Param(catalog.element_name(gname, i, k), dim, gname, when))
        return params

    # -- the candidate --------------------------------------------------------------------
    def searched(self) -> list[str]:
        """Names of the hyperparameters that vary, in declaration order."""
        return [p.name for p in self._params if p.dim.varies]

    def defaults(self) -> dict[str, Any]:
        """The candidate of every default: the first trial of a grid search."""
        return self.complete({})

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A random candidate without keras-tuner; the same ``rng`` state gives the same one."""
        values: dict[str, Any] = {}
        for p in self._params:
            if p.when is None or (p.group is not None and values[p.group] in p.when):
                values[p.name] = p.dim.sample(rng)
        return self.complete(values)

    def declare(self, hp: Any) -> dict[str, Any]:
        """Register every hyperparameter on ``hp``; return the active candidate of its values.

        Elements beyond the smallest count live in ``hp.conditional_scope(group, counts)``, so
        every oracle samples them only when active and drops them otherwise.
        """
        values: dict[str, Any] = {}
        for p in self._params:
            if p.when is None:
                value = p.dim.declare(hp, p.name)
            else:
                with hp.conditional_scope(p.group, list(p.when)):
                    value = p.dim.declare(hp, p.name)
            if value is not None:
                values[p.name] = value
        return self.complete(values)

    def complete(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every catalog key of the family: defaults filled in, inherited values resolved,
        elements beyond their group's count dropped. keras-tuner's ``tuner/...`` keys are
        ignored; numeric text (MLflow params) is converted."""
        problems: list[ConfigError] = [
            SpaceError(self._unknown(name), file=self.path, key=name)
            for name in values if not name.startswith("tuner/") and self._locate(name) is None]
        out: dict[str, Any] = {}

        def take(name: str, key: catalog.Key, default: Any) -> Any:
            if name not in values:
                return default
            ok, value = coerce(key.type, values[name])
            if not ok:
                problems.append(SpaceError(type_problem(key, values[name]), file=self.path,
                                           key=name))
            return value

        for k, key in self._schema.keys.items():
            out[k] = take(k, key, self._top[k].default if k in self._top else key.default)
        for gname, group in self._schema.groups.items():
            g = self._groups[gname]
            count = out[gname] = take(gname, count_key(group), g.count.default)
            starts = {k: take(growth_name(gname, k), group.keys[k], spec.start.default)
                      for k, spec in g.keys.items() if isinstance(spec, Growth)}
            out.update({growth_name(gname, k): v for k, v in starts.items()})
            for i in range(1, (count or 0) + 1):
                for k, key in group.keys.items():
                    name = catalog.element_name(gname, i, k)
                    spec = g.keys.get(k)
                    if isinstance(spec, Growth):  # derived: a value given for it is ignored
                        out[name] = spec.value(int(starts[k]), i)
                    elif spec is not None:
                        dim = element_dim(spec, i)
                        out[name] = take(name, key, dim.default if dim else key.default)
                    elif key.inherit:
                        out[name] = out.get(key.inherit, key.default)
                    else:
                        out[name] = take(name, key, key.default)
        if problems:
            raise SpaceError("invalid values", file=self.path, problems=problems)
        return out

    def canonical(self, candidate: Mapping[str, Any]) -> tuple:
        """A hashable form; candidates that differ only in inactive values are equal."""
        return tuple(self.complete(candidate).items())

    def grid_ready(self) -> str | None:
        """None when the grid tuner can enumerate every hyperparameter, else the reasons."""
        reasons: dict[str, str] = {}
        for p in self._params:
            d = p.dim
            if d.kind in ("int", "float") and d.step is None and (d.kind == "float" or d.log):
                key = p.name if p.group is None else f"{p.group}.{p.name.rsplit('.', 1)[1]}"
                what = "a float range" if d.kind == "float" else "a log-sampled int range"
                reasons.setdefault(key, f"{key}: {what} needs a step for grid search")
        return "; ".join(reasons.values()) or None

    # -- --set ----------------------------------------------------------------------------
    def pinned(self, assignments: Mapping[str, Any]) -> Space:
        """This space with hyperparameters fixed (``tunetrack search --set KEY=VALUE``).

        A pinned key is no longer searched; its value must be one the space can produce, as
        for :meth:`override`. An element key (``blocks.3.filters``) is pinned for that element
        whenever it is active; a growth rule is pinned through its start.
        """
        top, groups = dict(self._top), dict(self._groups)
        checked, problems = self._checked(assignments)
        for _name, (gname, index, k), value in checked:
            if gname is None:
                key = self._schema.keys[k]
                top[k] = Dim("fixed", key.type, value, values=(value,))
                continue
            g, group = groups[gname], self._schema.groups[gname]
            if index is None:
                count = int(value)
                groups[gname] = replace(g, count=Dim("fixed", int, count, values=(count,)),
                                        count_set=True, counts=(count,))
                continue
            key = group.keys[k]
            fixed = Dim("fixed", key.type, value, values=(value,))
            spec = g.keys.get(k)
            if isinstance(spec, Growth):
                new: Spec = replace(spec, start=fixed)
            else:
                default = Dim("fixed", key.type, key.default, values=(key.default,))
                per = [element_dim(spec, i) or default if spec is not None else default
                       for i in range(1, max(g.counts) + 1)]
                per[index - 1] = fixed
                new = tuple(per)
            groups[gname] = replace(g, keys={**g.keys, k: new})
        if problems:
            raise SpaceError("invalid --set", file=_SET, problems=problems)
        space = Space(path=self.path, family=self.family, description=self.description,
                      constraints=self.constraints, top=top, groups=groups,
                      input_shape=self.input_shape, classes=self.classes)
        space.pins = {**self.pins, **{k: str(v) for k, v in assignments.items()}}
        return space

    def override(self, candidate: Mapping[str, Any], assignments: Mapping[str, Any]
                 ) -> dict[str, Any]:
        """``candidate`` with ``tunetrack plan --set KEY=VALUE`` assignments applied.

        Each text is parsed to its key's type and must be a value this space can produce (a key
        the space omits: any value the catalog allows).
        """
        values = dict(self.complete(candidate))
        elements: list[tuple[str, str, int]] = []
        checked, problems = self._checked(assignments)
        for name, (gname, index, _), value in checked:
            values[name] = value
            if gname is not None and index:
                elements.append((name, gname, index))
        for name, gname, index in elements:
            if index > values[gname]:
                problems.append(SpaceError(
                    f"element {index} is inactive because {gname} = {values[gname]}; also set "
                    f"{gname}={index}", file=_SET, key=name))
        if problems:
            raise SpaceError("invalid --set", file=_SET, problems=problems)
        return self.complete(values)

    def _checked(self, assignments: Mapping[str, Any]
                 ) -> tuple[list[tuple[str, _Where, Any]], list[ConfigError]]:
        """``(name, where, value)`` of each assignment that is valid, and a problem for each
        one that is not."""
        checked: list[tuple[str, _Where, Any]] = []
        problems: list[ConfigError] = []
        for name, text in assignments.items():
            where = self._locate(name)
            if where is None:
                problems.append(SpaceError(self._unknown(name), file=_SET, key=name))
                continue
            why, value = self._check_assignment(name, where, text)
            if why is not None:
                problems.append(SpaceError(why, file=_SET, key=name))
                continue
            checked.append((name, where, value))
        return checked, problems

    def _check_assignment(self, name: str, where: _Where, text: Any) -> tuple[str | None, Any]:
        gname, index, k = where
        dim: Dim | None
        if gname is None:
            key, dim = self._schema.keys[k], self._top.get(k)
        elif index is None:
            g = self._groups[gname]
            key, dim = count_key(self._schema.groups[gname]), g.count if g.count_set else None
        else:
            key = self._schema.groups[gname].keys[k]
            spec = self._groups[gname].keys.get(k)
            if isinstance(spec, Growth):
                if index != 0:
                    return (f"{name} follows the growth rule {gname}.{k} "
                            f"{spec.describe()}; set {growth_name(gname, k)}=... instead"), None
                dim = spec.start
            else:
                dim = element_dim(spec, index) if spec is not None else None
            if spec is None and key.inherit:
                return (f"{name} follows {key.inherit!r} in this space; set "
                        f"{key.inherit}=... instead"), None
        allowed = dim.describe() if dim is not None else None
        ok, value = coerce(key.type, text)
        if not ok:
            why = type_problem(key, text)
            return why + (f"; the space allows {allowed}" if allowed else ""), None
        if dim is not None:
            if not dim.contains(value):
                return f"{value!r} is not in the space, which allows {allowed}", None
            return None, tidy(value) if key.type is float else value
        label = "count" if index is None and gname else k
        return bounds_problem(key, label, value), value

    def _locate(self, name: str) -> _Where | None:
        """``(group, index, key)`` of a hyperparameter name, or None if the family has none."""
        if name in self._schema.keys:
            return None, None, name
        if name in self._schema.groups:
            return name, None, "count"
        parts = name.split(".")
        if len(parts) != 3 or parts[0] not in self._schema.groups:
            return None
        gname, middle, last = parts
        if middle.isdigit() and int(middle) >= 1 and last in self._schema.groups[gname].keys:
            return gname, int(middle), last
        if last == "start" and isinstance(self._groups[gname].keys.get(middle), Growth):
            return gname, 0, middle
        return None

    def _unknown(self, name: str) -> str:
        names = [*self._schema.keys, *self._schema.groups]
        patterns = []
        for gname, group in self._schema.groups.items():
            top = max(self._groups[gname].counts)
            names += [catalog.element_name(gname, i, k) for i in range(1, top + 1)
                      for k in group.keys]
            starts = [growth_name(gname, k) for k, spec in self._groups[gname].keys.items()
                      if isinstance(spec, Growth)]
            names += starts
            patterns += [catalog.element_name(gname, "N", k) for k in group.keys] + starts
        every = allowed_list([*self._schema.keys, *self._schema.groups, *patterns])
        return (f"unknown hyperparameter {name!r}{did_you_mean(name, names)}; family "
                f"{self.family!r} has {every}")


def load_space(path: str | Path) -> Space:
    """Read and validate a space file; ``SpaceError.problems`` lists every problem in it."""
    return space_from_document(load_yaml(path, error=SpaceError))


def space_from_document(doc: Document, at: Key = ()) -> Space:
    """Validate the space found at key path ``at`` of ``doc`` (a file, or a part of one)."""
    return Space(path=doc.path, **parse_document(doc, at))
