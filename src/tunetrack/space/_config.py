"""The plain records a pipeline and a space file are read into, and the values they allow.

Pure data (no I/O, no keras): :mod:`tunetrack.data` loads a :class:`DataConfig`, the search
checks candidates against :class:`Constraints`. The YAML checks live with the loaders
(:mod:`tunetrack.space.pipeline`, :mod:`tunetrack.space.parse`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from tunetrack.names import DIRECTIONS, OBJECTIVE_DIRECTIONS

TUNERS = ("random", "grid", "bayesian", "hyperband")
COLOR_MODES = ("rgb", "grayscale")
BAD_IMAGE_POLICIES = ("error", "skip")
# The metrics every model is compiled with, and which way each improves.
OBJECTIVES = OBJECTIVE_DIRECTIONS
DEFAULT_SOURCE = "digits"
# ``keras:NAME`` sources (tunetrack.data knows their shapes and classes).
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")


@dataclass(frozen=True)
class DataConfig:
    """What to load and how to split it: a pipeline's ``data:`` section.

    ``source`` is ``digits``, ``keras:NAME`` or an image folder; ``image_size`` is
    (height, width). ``cache_dir`` holds decoded folders: None means ``.tunetrack/cache``
    under the working directory, False or ``""`` turns the cache off. Built from JSON with
    ``DataConfig(**values)`` (the registry rebuilds the test split from a logged copy).
    """

    source: str
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    validation_split: float = 0.2
    test_split: float = 0.2
    seed: int = 0
    on_bad_image: str = "error"
    cache_dir: Path | str | Literal[False] | None = None


@dataclass(frozen=True)
class Constraints:
    """Limits a candidate must meet before it is trained; None means no limit.

    A space file and a pipeline both have a ``constraints:`` section; the pipeline's set
    limits win (:meth:`merged`).
    """

    max_params: int | None = None
    min_feature_map: int | None = None
    max_flops: int | None = None

    def merged(self, other: Any) -> Constraints:
        """These limits with ``other``'s set ones winning (a pipeline overrides its space).

        ``other`` is a :class:`Constraints`, anything with the same attributes, or None.
        """
        if other is None:
            return self
        given = {f.name: getattr(other, f.name, None) for f in fields(self)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


@dataclass(frozen=True)
class TunerSection:
    """A pipeline's ``tuner:`` section: which keras-tuner oracle, and how long it may search."""

    kind: str = "random"
    max_trials: int = 10
    executions_per_trial: int = 1
    seed: int = 0
    max_consecutive_failures: int = 3
    max_rejected: int = 100
    hyperband_factor: int = 3
    max_minutes: float | None = None


@dataclass(frozen=True)
class TrainingSection:
    """A pipeline's ``training:`` section; ``patience`` None turns early stopping off."""

    epochs: int = 10
    patience: int | None = 3


def objective_problem(name: str, direction: str) -> str | None:
    """Why ``direction`` cannot go with the objective ``name``, or None when it can."""
    if direction not in DIRECTIONS:
        return f"direction must be 'min' or 'max', got {direction!r}"
    natural = OBJECTIVES.get(name)
    if natural is not None and natural != direction:
        better = "higher" if natural == "max" else "lower"
        return (f"direction {direction!r} contradicts {name!r}, which is better {better} "
                f"(direction {natural!r}); write direction: {natural} or leave it out")
    return None
