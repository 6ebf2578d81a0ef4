"""One value of a search space (a ``Dim``): its YAML spec parsed and checked, sampled, declared.

Private to :mod:`tunetrack.space`. A group's ``Dim`` is shared by every element of the group
(``blocks.filters`` gives ``blocks.1.filters``, ``blocks.2.filters``, ...).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from tunetrack.errors import allowed_list, did_you_mean
from tunetrack.space.catalog import Key, Padding

KINDS = ("int", "float", "choice", "bool", "fixed")
_OPTIONS = {"int": ("step", "log", "default"), "float": ("step", "log", "default"),
            "choice": ("default",), "bool": ("default",), "fixed": ("default",)}
_TYPE_NAMES = {int: "an int", float: "a float", str: "a str", bool: "a bool",
               Padding: "'same', 'valid' or a whole number of pixels >= 0"}
_HINTS = {int: "{int: [min, max]}, {choice: [...]} or a plain int",
          float: "{float: [min, max]}, {choice: [...]} or a plain number",
          str: "{choice: [...]} or a plain value", bool: "{bool: default} or a plain true/false",
          Padding: "same, valid, a number of pixels (2) or {choice: [...]}"}
# The catalog has no ``low_open``: these keys must be strictly above their ``low``.
LOW_OPEN = frozenset({"learning_rate", "width"})
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOL_TEXT = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}
_EPS = 1e-9

Report: TypeAlias = Callable[[tuple[Any, ...], str], None]  # (doc path below the value, message)


def number(value: object) -> int | float | None:
    """``value`` as a finite number; numeric text counts, since YAML 1.1 reads ``1e-4`` as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip().replace("_", "")
        try:
            value = int(text)
        except ValueError:
            value = float(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def coerce(type_: type, value: object) -> tuple[bool, Any]:
    """``(True, value as type_)``, or ``(False, None)`` when ``value`` is not of that type."""
    if type_ is bool:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            return True, _BOOL_TEXT[value.strip().lower()]
        return False, None
    if type_ is Padding:
        return _padding(value)
    if type_ is str:
        return (True, value) if isinstance(value, str) else (False, None)
    n = number(value)
    if n is None:
        return False, None
    if type_ is int:
        if isinstance(n, float) and not n.is_integer():
            return False, None
        return True, int(n)
    return True, tidy(float(n))


def _padding(value: object) -> tuple[bool, Any]:
    """``'same'``/``'valid'``, or pixels as text: ``2`` and ``'2'`` both give ``'2'``."""
    if isinstance(value, str) and value in ("same", "valid"):
        return True, value
    n = number(value)
    if n is None or (isinstance(n, float) and not n.is_integer()) or n < 0:
        return False, None
    return True, str(int(n))


def tidy(x: float) -> float:
    """12 significant digits: ``0.1 + 0.2`` is ``0.3`` in a candidate and in MLflow."""
    return float(f"{x:.12g}")


def type_problem(key: Key, value: object, what: str = "") -> str:
    allowed = f"; allowed: {allowed_list(key.choices)}" if key.choices else ""
    if key.type is Padding:
        allowed = did_you_mean(value, ("same", "valid"))
    return f"{what}expected {_TYPE_NAMES[key.type]}, but got {value!r}{allowed}"


def range_text(key: Key, label: str) -> str:
    low_op = ">" if label in LOW_OPEN else ">="
    high_op = "<" if key.high_open else "<="
    parts = ([f"{low_op} {key.low}"] if key.low is not None else []) + (
        [f"{high_op} {key.high}"] if key.high is not None else [])
    return " and ".join(parts)


def bounds_problem(key: Key, label: str, value: Any, what: str = "", note: str = "") -> str | None:
    """Why ``value`` breaks the catalog's choices or bounds of ``label``, or None."""
    if key.choices is not None:
        if value in key.choices:
            return None
        return (f"{what}unknown {label} {value!r}{did_you_mean(value, key.choices)}; "
                f"allowed: {allowed_list(key.choices)}")
    if key.type not in (int, float):
        return None
    low_ok = key.low is None or value > key.low or (value == key.low and label not in LOW_OPEN)
    high_ok = key.high is None or value < key.high or (value == key.high and not key.high_open)
    if low_ok and high_ok:
        return None
    return f"{what}{value!r} is out of range: {label} must be {range_text(key, label)}{note}"


@dataclass(frozen=True)
class Dim:
    """A parsed value spec: ``kind`` is int, float, choice, bool or fixed (one value)."""

    kind: str
    type: type
    default: Any
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    values: tuple[Any, ...] = ()

    @property
    def varies(self) -> bool:
        return self.kind != "fixed"

    def finite_values(self) -> tuple[Any, ...] | None:
        """Every value the dim can take, or None for a continuous float range."""
        if self.kind in ("choice", "fixed"):
            return self.values
        if self.kind == "bool":
            return (self.default, not self.default)
        if self.step is None:
            return tuple(range(self.low, self.high + 1)) if self.kind == "int" else None
        if self.log:
            n = int(math.log(self.high / self.low, self.step) + 1e-8) + 1
            raw = [self.low * self.step ** i for i in range(n)]
        else:
            n = int(math.floor((self.high - self.low) / self.step + _EPS)) + 1
            raw = [self.low + i * self.step for i in range(n)]
        return tuple(int(v) if self.kind == "int" else tidy(v) for v in raw)

    def contains(self, value: Any) -> bool:
        if self.kind in ("choice", "fixed"):
            return value in self.values
        if self.kind == "bool":
            return value in (True, False)
        if not self.low - _EPS * abs(self.low) <= value <= self.high + _EPS * abs(self.high):
            return False
        if self.step is None:
            return True
        if self.log:
            k = math.log(value / self.low, self.step)
        else:
            k = (value - self.low) / self.step
        return abs(k - round(k)) < 1e-6

    def describe(self) -> str:
        """The values this dim allows, for messages."""
        if self.kind in ("int", "float"):
            text = f"{_TYPE_NAMES[self.type]} from {self.low} to {self.high}"
            if self.step is not None:
                text += f" multiplied by {self.step}" if self.log else f" in steps of {self.step}"
            return text + (" (log scale)" if self.log and self.step is None else "")
        if self.kind == "choice":
            return f"one of {allowed_list(self.values)}"
        if self.kind == "bool":
            return "true or false"
        return f"only {self.default!r} (fixed by the space)"

    def sample(self, rng: random.Random) -> Any:
        """One value, drawn the way keras-tuner's random oracle draws it (uniform, log-uniform)."""
        if self.kind == "fixed":
            return self.default
        if self.kind == "bool":
            return rng.random() < 0.5
        values = self.values if self.kind == "choice" else self.finite_values()
        if values is not None and (self.kind == "choice" or self.step is not None):
            return values[rng.randrange(len(values))]
        u = rng.random()
        if self.kind == "int":
            top = self.high + 1  # the same widening keras-tuner uses, so max is reachable
            v = self.low * (top / self.low) ** u if self.log else self.low + u * (top - self.low)
            return min(int(v), self.high)
        lo, hi = self.low, self.high
        v = lo * (hi / lo) ** u if self.log else lo + u * (hi - lo)
        return tidy(min(max(v, lo), hi))

    def declare(self, hp: Any, name: str) -> Any:
        """Register on a keras-tuner ``HyperParameters``; returns its value (None if inactive)."""
        if self.kind == "fixed":
            return hp.Fixed(name, self.default)
        if self.kind == "bool":
            return hp.Boolean(name, default=self.default)
        if self.kind == "choice":
            return hp.Choice(name, list(self.values), default=self.default)
        sampling = "log" if self.log else "linear"
        if self.kind == "int":
            return hp.Int(name, self.low, self.high, step=self.step, sampling=sampling,
                          default=self.default)
        high = self.high
        values = self.finite_values()
        if values is not None and self.step is not None and not self.log:
            # keras-tuner counts steps with ``//``: (0.5 - 0) // 0.1 == 4, so 0.5 would never be
            # drawn. Nudge max by a millionth of a step so it finds every value we find.
            n = len(values)
            if int((high - self.low) // self.step) + 1 < n:
                high = self.low + (n - 1 + 1e-6) * self.step
        return hp.Float(name, self.low, high, step=self.step, sampling=sampling,
                        default=self.default)


def parse_dim(raw: Any, key: Key, label: str, report: Report, note: str = "") -> Dim | None:
    """Parse the YAML value of one key; report every problem found, None if there was one."""
    problems: list[str] = []

    def fail(sub: tuple, message: str) -> None:
        problems.append(message)
        report(sub, message)

    if isinstance(raw, list):
        fail((), f"a list is not a value; write {{choice: {raw!r}}} to search these values")
        return None
    if raw is None:
        fail((), f"missing value; write {_HINTS[key.type]}")
        return None
    if not isinstance(raw, dict):
        raw = {"fixed": raw}
    kinds = [k for k in raw if k in KINDS]
    if len(kinds) != 1:
        if kinds:
            fail((kinds[1],), f"give one kind, but got {allowed_list(kinds)}")
        else:
            first = next(iter(raw), "")
            fail((first,) if first else (), f"expected one of int, float, choice, bool, fixed "
                 f"as a kind, but got {allowed_list(raw)}{did_you_mean(first, KINDS)}")
        return None
    kind = kinds[0]
    for option in raw:
        if option != kind and option not in _OPTIONS[kind]:
            fail((option,), f"unknown option {option!r} of {{{kind}: ...}}"
                 f"{did_you_mean(option, _OPTIONS[kind])}; allowed: {allowed_list(_OPTIONS[kind])}")
    wanted = {"int": int, "float": float, "bool": bool}.get(kind, key.type)
    if wanted is not key.type:
        fail((kind,), f"{label} takes {key.type.__name__} values, so {{{kind}: ...}} does not "
             f"apply; write {_HINTS[key.type]}")
        return None

    def value_of(sub: tuple, value: Any, what: str) -> tuple[bool, Any]:
        ok, out = coerce(key.type, value)
        if not ok:
            fail(sub, type_problem(key, value, what))
            return False, None
        if (why := bounds_problem(key, label, out, what, note)) is not None:
            fail(sub, why)
            return False, None
        return True, out

    if kind in ("int", "float"):
        dim = _parse_range(raw, kind, key, fail, value_of)
    elif kind == "choice":
        dim = _parse_choice(raw, key, fail, value_of)
    else:
        ok, value = value_of((kind,), raw[kind], "")
        if not ok:
            return None
        if kind == "bool":
            dim = Dim("bool", bool, value)
        else:
            dim = Dim("fixed", key.type, value, values=(value,))
    if dim is None or problems:
        return None
    if "default" in raw and dim.kind != "bool":
        ok, default = value_of(("default",), raw["default"], "default ")
        if not ok:
            return None
        if not dim.contains(default):
            fail(("default",), f"default {default!r} is not a value of the space: it allows "
                 f"{dim.describe()}")
            return None
        dim = Dim(dim.kind, dim.type, default, dim.low, dim.high, dim.step, dim.log, dim.values)
    elif "default" in raw:
        ok, default = value_of(("default",), raw["default"], "default ")
        dim = Dim("bool", bool, default) if ok else None
    return dim


def _parse_range(raw: dict, kind: str, key: Key, fail: Callable, value_of: Callable) -> Dim | None:
    bounds = raw[kind]
    if not (isinstance(bounds, list) and len(bounds) == 2):
        fail((kind,), f"expected [min, max], but got {bounds!r}")
        return None
    (ok_low, low), (ok_high, high) = (value_of((kind, i), v, w) for i, v, w in
                                      ((0, bounds[0], "min "), (1, bounds[1], "max ")))
    log, step = raw.get("log", False), raw.get("step")
    if not isinstance(log, bool):
        fail(("log",), f"log must be true or false, but got {log!r}")
        return None
    if step is not None:
        ok, step = coerce(key.type, step)
        if not ok:
            fail(("step",), f"step must be {_TYPE_NAMES[key.type]}, but got {raw['step']!r}")
            return None
    if not (ok_low and ok_high):
        return None
    if low > high:
        fail((kind,), f"min must be <= max, but got [{low}, {high}]")
        return None
    if log and low <= 0:
        fail(("log",), f"log sampling needs min > 0, but got min={low}")
        return None
    if step is not None:
        if step <= 0 or (log and step <= 1):
            rule = "with log: true the step multiplies, so it must be > 1" if log else "must be > 0"
            fail(("step",), f"step {rule}, but got {step}")
            return None
        reach = low * step if log else low + step
        if low < high and reach > high * (1 + _EPS):
            how = " (with log: true, min * step must be <= max)" if log else ""
            fail(("step",), f"step {step} is larger than the range [{low}, {high}]{how}")
            return None
    if low == high:
        return Dim("fixed", key.type, low, values=(low,))
    return Dim(kind, key.type, low, low, high, step, log)


def _parse_choice(raw: dict, key: Key, fail: Callable, value_of: Callable) -> Dim | None:
    items = raw["choice"]
    if not isinstance(items, list):
        fail(("choice",), f"expected a list of values, but got {items!r}")
        return None
    if not items:
        fail(("choice",), "a choice needs at least one value, but got []")
        return None
    values: list = []
    for i, item in enumerate(items):
        ok, value = value_of(("choice", i), item, "")
        if not ok:
            continue
        if value in values:
            fail(("choice", i), f"choice values must be distinct, but {value!r} appears more "
                 f"than once in {items!r}")
            continue
        values.append(value)
    if len(values) != len(items):
        return None
    if len(values) == 1:
        return Dim("fixed", key.type, values[0], values=tuple(values))
    if key.type is bool:  # keras-tuner's Choice turns True/False into 1/0: use a Boolean
        return Dim("bool", bool, values[0])
    return Dim("choice", key.type, values[0], values=tuple(values))
