"""The pipeline file: which data, which space, which tuner, how long to train, which metric decides.

A pipeline is the unit a user runs (``tunetrack search PIPELINE``). Command-line flags
override its values through :meth:`Pipeline.override`; nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunetrack.errors import ConfigError, PipelineError, allowed_list, did_you_mean, shown
from tunetrack.space._config import (
    BAD_IMAGE_POLICIES,
    COLOR_MODES,
    DATA_CACHE_MODES,
    DEFAULT_SOURCE,
    DIRECTIONS,
    KERAS_DATASETS,
    OBJECTIVES,
    PRUNERS,
    TUNERS,
    Constraints,
    DataConfig,
    PruningSection,
    TrainingSection,
    TunerSection,
    objective_problem,
    pruning_problem,
)
from tunetrack.space.parse import read_constraints
from tunetrack.space.yamlio import Document, load_yaml

__all__ = [
    "DEFAULT_EXPERIMENT", "OBJECTIVES", "TUNERS", "Constraints", "DataConfig", "Pipeline",
    "TrainingSection", "TunerSection", "file_digest", "load_pipeline",
]

DEFAULT_EXPERIMENT = "tunetrack"


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file. ``space`` is resolved relative to the pipeline's folder.

    ``objective`` is the metric's name; ``direction`` (``'min'`` or ``'max'``) says which way
    it improves, and ``direction_stated`` whether the file said so or it was inferred from the
    name. Build it with :func:`load_pipeline`.
    """

    path: str
    name: str
    space: str
    experiment: str = DEFAULT_EXPERIMENT
    objective: str = "val_accuracy"
    direction: str = "max"
    direction_stated: bool = False
    data: DataConfig = field(default_factory=lambda: DataConfig(source=DEFAULT_SOURCE))
    tuner: TunerSection = field(default_factory=TunerSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    constraints: Constraints = field(default_factory=Constraints)
    description: str = ""
    # ``--set KEY=VALUE`` of ``tunetrack search``: hyperparameters fixed for this search
    pins: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (why := objective_problem(self.objective, self.direction)) is not None:
            raise ValueError(f"Pipeline(objective={self.objective!r}): {why}")

    def override(self, **flags: Any) -> Pipeline:
        """A copy with command-line flags applied; ``None`` means "not given"."""
        tuner = {k: flags.get(f) for k, f in (("kind", "tuner"), ("max_trials", "max_trials"),
                                              ("seed", "seed"), ("max_minutes", "max_minutes"),
                                              ("executions_per_trial", "executions_per_trial"),
                                              ("repeats", "repeats"))}
        training = {"epochs": flags.get("epochs")}
        data = {"source": flags.get("data")}
        top = {"experiment": flags.get("experiment"), "space": flags.get("space")}
        if top["space"] is not None:
            top["space"] = str(Path(top["space"]))
        pins = tuple(flags.get("pins") or ())
        errors = []
        if top["experiment"] is not None and not top["experiment"].strip():
            errors.append("--experiment must name an experiment, got ''")
        if data["source"] is not None and not data["source"].strip():
            errors.append("--data must be 'digits', 'keras:NAME' or a folder path, got ''")
        for key, value in (("max_trials", tuner["max_trials"]), ("epochs", training["epochs"]),
                           ("executions_per_trial", tuner["executions_per_trial"]),
                           ("repeats", tuner["repeats"])):
            if value is not None and value < 1:
                errors.append(f"--{key.replace('_', '-')} must be at least 1, got {value}")
        if tuner["kind"] is not None and tuner["kind"] not in TUNERS:
            errors.append(f"--tuner must be one of {allowed_list(TUNERS)}, got {tuner['kind']!r}")
        pruning = flags.get("pruning")
        if pruning is not None and pruning not in PRUNERS:
            errors.append(f"--pruning must be one of {allowed_list(PRUNERS)}, got {pruning!r}")
        if errors:
            raise PipelineError("; ".join(errors), file=self.path)
        new_tuner = dataclasses.replace(self.tuner, **_given(tuner))
        if pruning is not None:
            new_tuner = dataclasses.replace(
                new_tuner, pruning=dataclasses.replace(new_tuner.pruning, kind=pruning))
        if (why := pruning_problem(new_tuner)) is not None:
            raise PipelineError(why, file=self.path)
        return dataclasses.replace(
            self, **_given(top), pins=(*self.pins, *pins),
            tuner=new_tuner,
            training=dataclasses.replace(self.training, **_given(training)),
            data=dataclasses.replace(self.data, **_given(data)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_SECTIONS: dict[str, type[Any]] = {"data": DataConfig, "tuner": TunerSection,
                                   "training": TrainingSection}
_TOP = ("name", "description", "experiment", "space", "objective", *_SECTIONS, "constraints")
_OBJECTIVE_KEYS = ("name", "direction")


class _Checker:
    """Collects every problem of one document, each with its file and line."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[ConfigError] = []

    def fail(self, message: str, *key: object) -> None:
        self.problems.append(PipelineError(message, file=self.doc.path, line=self.doc.line(*key),
                                           key=".".join(map(str, key)) or None))

    def keys(self, mapping: dict[Any, Any], allowed: tuple[str, ...], *where: object) -> None:
        for key in mapping:
            if key not in allowed:
                self.fail(f"unknown key {shown(key)}; allowed: {allowed_list(allowed)}"
                          f"{did_you_mean(key, allowed)}", *where, key)

    def typed(self, value: Any, kind: str, *key: object, low: float | None = None,
              high: float | None = None, high_open: bool = False,
              low_open: bool = False) -> Any:
        """``value`` converted to ``kind`` (int, float, str, bool), or None after a problem.
        A float must be finite."""
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str), "bool": isinstance(value, bool)}[kind]
        if kind == "float" and isinstance(value, str):
            try:
                value, ok = float(value), True  # YAML 1.1 reads 1e-4 as text
            except ValueError:
                pass
        if not ok:
            self.fail(f"must be {'an' if kind == 'int' else 'a'} {kind}, got {shown(value)}",
                      *key)
            return None
        if kind == "float" and not math.isfinite(value):
            self.fail(f"must be a finite number, got {shown(value)}", *key)
            return None
        if low is not None and (value <= low if low_open else value < low):
            self.fail(f"must be {'above' if low_open else 'at least'} {low}, got {shown(value)}",
                      *key)
            return None
        if high is not None and (value >= high if high_open else value > high):
            self.fail(f"must be {'below' if high_open else 'at most'} {high}, got "
                      f"{shown(value)}", *key)
            return None
        return float(value) if kind == "float" else value

    def choice(self, value: Any, allowed: tuple[str, ...], *key: object) -> Any:
        if not isinstance(value, str) or value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.fail(f"must be one of {allowed_list(allowed)}, got {shown(value)}{hint}", *key)
            return None
        return value


# key -> (kind, bounds or choices); bounds are (low, high, high_open, low_open)
_FRACTION = ("float", 0.0, 1.0, True, True)  # 0 < fraction < 1, as tunetrack.data requires
_RULES: dict[str, dict[str, tuple[Any, ...]]] = {
    "data": {"source": ("str",), "image_size": ("size",), "color_mode": ("choice", COLOR_MODES),
             "validation_split": _FRACTION, "test_split": _FRACTION,
             "seed": ("int", 0), "on_bad_image": ("choice", BAD_IMAGE_POLICIES),
             "cache": ("choice", DATA_CACHE_MODES)},
    "tuner": {"kind": ("choice", TUNERS), "max_trials": ("int", 1), "seed": ("int", 0),
              "executions_per_trial": ("int", 1), "repeats": ("int", 1),
              "max_consecutive_failures": ("int", 1),
              "max_rejected": ("int", 0), "hyperband_factor": ("int", 2),
              "max_minutes": ("float", 0.0), "pruning": ("pruning",)},
    "training": {"epochs": ("int", 1), "patience": ("int", 1), "mixed_precision": ("bool",),
                 "jit_compile": ("bool",), "class_weight": ("class_weight",)},
}
_NULLABLE = ("patience", "max_minutes", "image_size", "color_mode", "jit_compile",
             "class_weight")


def _check_section(check: _Checker, name: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        check.fail(f"must be a mapping of {allowed_list(_RULES[name])}, got {shown(raw)}", name)
        return {}
    check.keys(raw, tuple(_RULES[name]), name)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        rule = _RULES[name].get(key)
        if rule is None:
            continue
        if value is None and key in _NULLABLE:
            out[key] = None
            continue
        kind = rule[0]
        if kind == "choice":
            out[key] = check.choice(value, rule[1], name, key)
        elif kind == "pruning":
            out[key] = _check_pruning(check, value, name, key)
        elif kind == "class_weight":
            out[key] = _check_class_weight(check, value, name, key)
        elif kind == "size":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                out[key] = (value, value)
            elif (isinstance(value, list) and len(value) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                          for v in value)):
                out[key] = tuple(value)
            else:
                check.fail(f"must be [height, width] of positive integers, got {shown(value)}",
                           name, key)
        else:
            low = rule[1] if len(rule) > 1 else None
            high = rule[2] if len(rule) > 2 else None
            out[key] = check.typed(value, kind, name, key, low=low, high=high,
                                   high_open=len(rule) > 3 and rule[3],
                                   low_open=len(rule) > 4 and rule[4])
        if out.get(key, 0) is None and value is not None:
            out.pop(key)
    return out


def _check_class_weight(check: _Checker, raw: Any, *where: str) -> Any:
    """``balanced`` or ``{class name: positive weight}`` (the names are checked against the
    data when the search loads it)."""
    if raw == "balanced":
        return raw
    if isinstance(raw, dict) and raw and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for v in raw.values()):
        return {str(k): float(v) for k, v in raw.items()}
    check.fail(f"must be 'balanced' or a mapping of class name to a positive weight like "
               f"{{cat: 1.0, dog: 3.0}}, got {shown(raw)}", *where)
    return None


# Each tuner.pruning key and its rule: one of the kinds, or an int with its least value.
_PRUNING_INTS: dict[str, int] = {"warmup_epochs": 0, "min_trials": 1, "reduction_factor": 2,
                                 "min_epochs": 1}
_PRUNING = ("kind", *_PRUNING_INTS)


def _check_pruning(check: _Checker, raw: Any, *where: str) -> PruningSection | None:
    """``tuner.pruning``: ``{kind: median|asha|none, warmup_epochs: N, min_trials: M,
    reduction_factor: ETA, min_epochs: R}`` (or just the kind as text)."""
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict):
        check.fail(f"must be a mapping like {{kind: median, warmup_epochs: 2}} with kind one of "
                   f"{allowed_list(PRUNERS)}, got {shown(raw)}", *where)
        return None
    check.keys(raw, tuple(_PRUNING), *where)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _PRUNING:
            continue
        got = (check.choice(value, PRUNERS, *where, key) if key == "kind"
               else check.typed(value, "int", *where, key, low=_PRUNING_INTS[key]))
        if got is None:
            return None
        out[key] = got
    return PruningSection(**out)


def _check_objective(check: _Checker, raw: Any) -> dict[str, Any]:
    """``objective: NAME`` or ``objective: {name: NAME, direction: min|max}``.

    A known metric's direction is inferred when the file leaves it out, and must agree with
    the metric when the file states it.
    """
    if isinstance(raw, str):
        name = check.choice(raw, tuple(OBJECTIVES), "objective")
        return {} if name is None else {"objective": name, "direction": OBJECTIVES[name]}
    if not isinstance(raw, dict):
        check.fail(f"must be a metric name ({allowed_list(OBJECTIVES)}) or a mapping like "
                   f"{{name: val_loss, direction: min}}, got {shown(raw)}", "objective")
        return {}
    check.keys(raw, _OBJECTIVE_KEYS, "objective")
    if "name" not in raw:
        check.fail(f"missing key 'name': write {{name: METRIC, direction: min|max}} with METRIC "
                   f"one of {allowed_list(OBJECTIVES)}", "objective")
        return {}
    name = check.choice(raw["name"], tuple(OBJECTIVES), "objective", "name")
    if "direction" not in raw:
        return {} if name is None else {"objective": name, "direction": OBJECTIVES[name]}
    direction = check.choice(raw["direction"], DIRECTIONS, "objective", "direction")
    if name is None or direction is None:
        return {}
    if (why := objective_problem(name, direction)) is not None:
        check.fail(why, "objective", "direction")
        return {}
    return {"objective": name, "direction": direction, "direction_stated": True}


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; every problem is reported at once (``PipelineError``)."""
    doc = load_yaml(path, error=PipelineError)
    if not isinstance(doc.data, dict):
        raise PipelineError(f"a pipeline must be a mapping of keys, got {type(doc.data).__name__}",
                            file=doc.path, line=1)
    check = _Checker(doc)
    raw = doc.data
    check.keys(raw, _TOP)
    values: dict[str, Any] = {}
    for key in ("name", "description", "experiment"):
        if key in raw:
            values[key] = check.typed(raw[key], "str", key)
            if key != "description" and values[key] is not None and not values[key].strip():
                check.fail(f"must not be empty, got {shown(values[key])}", key)
    if "objective" in raw:
        values.update(_check_objective(check, raw["objective"]))
    if "space" not in raw:
        check.fail("a pipeline needs 'space: FILE' naming its search space", "space")
    elif (space := check.typed(raw["space"], "str", "space")) is not None:
        resolved = Path(doc.path).parent / space
        if not resolved.is_file():
            check.fail(f"the space file {str(resolved)!r} does not exist", "space")
        values["space"] = str(resolved)
    sections = {name: _check_section(check, name, raw.get(name)) for name in _SECTIONS}
    constraints = read_constraints(raw.get("constraints"),
                                   lambda sub, message: check.fail(message, "constraints", *sub))
    source = sections["data"].get("source")
    if isinstance(source, str) and not source.strip():
        check.fail(f"must be 'digits', 'keras:NAME' or a folder path, got {shown(source)}",
                   "data", "source")
    if isinstance(source, str) and source.startswith("keras:") and \
            source[6:] not in KERAS_DATASETS:
        check.fail(f"unknown keras dataset {source[6:]!r}: allowed are "
                   f"{allowed_list('keras:' + n for n in KERAS_DATASETS)}"
                   f"{did_you_mean(source[6:], KERAS_DATASETS)}", "data", "source")
    given = sections["tuner"]  # executions_per_trial is keras-tuner's name for repeats
    if given.get("repeats", 1) > 1 and given.get("executions_per_trial", 1) > 1 and \
            given["repeats"] != given["executions_per_trial"]:
        check.fail(f"repeats {given['repeats']} contradicts executions_per_trial "
                   f"{given['executions_per_trial']} (keras-tuner's name for the same); give one",
                   "tuner", "repeats")
    if not check.problems and (why := pruning_problem(TunerSection(**sections["tuner"]))):
        check.fail(why, "tuner", "pruning" if "pruning" in (raw.get("tuner") or {}) else "kind")
    if check.problems:
        raise PipelineError("", problems=check.problems)
    data = DataConfig(**{"source": DEFAULT_SOURCE, **sections["data"]})
    if data.source != "digits" and not data.source.startswith("keras:"):
        # a folder, next to the pipeline file
        data = dataclasses.replace(data, source=str(Path(doc.path).parent / data.source))
    if data.validation_split + data.test_split >= 1.0:
        raise PipelineError("validation_split + test_split must be below 1, got "
                            f"{data.validation_split} + {data.test_split}",
                            file=doc.path, line=doc.line("data"), key="data")
    values = {k: v for k, v in values.items() if v is not None}
    values.setdefault("name", Path(doc.path).stem)
    return Pipeline(path=doc.path, **values, data=data,
                    tuner=TunerSection(**sections["tuner"]),
                    training=TrainingSection(**sections["training"]), constraints=constraints)


def file_digest(*paths: str | Path) -> str:
    """sha256 over the bytes of ``paths``: detects an edited pipeline or space between runs."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()
