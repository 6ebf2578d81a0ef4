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

TUNERS = ("random", "grid", "bayesian", "hyperband", "tpe")
# tuner.pruning.kind: stop unpromising trials early (search/pruning.py); hyperband prunes itself.
PRUNERS = ("none", "median", "asha")
COLOR_MODES = ("rgb", "grayscale")
BAD_IMAGE_POLICIES = ("error", "skip")
# data.cache: decoded images kept in memory (float32), streamed from a uint8 file on disk,
# decoded from the files batch by batch, or chosen by size against available RAM.
DATA_CACHE_MODES = ("auto", "memory", "disk", "none")
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
    cache: str = "auto"  # DATA_CACHE_MODES; auto: memory when it fits, else disk


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
class PruningSection:
    """``tuner.pruning``: which rule stops a trial early, and when it may start to.

    ``median`` (Optuna's MedianPruner): after ``warmup_epochs``, once ``min_trials`` trials ran
    to the end, stop a trial whose best objective so far is worse than the median of those
    trials at the same epoch. ``asha``: rungs at epochs ``min_epochs * reduction_factor**k``; a
    trial continues past a rung only in the top ``1/reduction_factor`` of the trials that
    reached it (asynchronous successive halving, Optuna's SuccessiveHalvingPruner).
    """

    kind: str = "none"
    warmup_epochs: int = 1
    min_trials: int = 3
    reduction_factor: int = 3
    min_epochs: int = 1


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
    pruning: PruningSection = PruningSection()
    # Seed repeats: each candidate trained this many times (search/repeats.py).
    # ``executions_per_trial`` is keras-tuner's name for the same: either may be given.
    repeats: int = 1

    @property
    def runs_per_candidate(self) -> int:
        """How many times each candidate is trained: ``repeats``, else ``executions_per_trial``."""
        return self.repeats if self.repeats > 1 else self.executions_per_trial


@dataclass(frozen=True)
class TrainingSection:
    """A pipeline's ``training:`` section; ``patience`` None turns early stopping off."""

    epochs: int = 10
    patience: int | None = 3
    mixed_precision: bool = False  # mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU
    jit_compile: bool | None = None  # None: Keras's "auto"
    # None: every class weighs 1; "balanced": n / (C * n_class); or {class name: weight}
    class_weight: str | dict[str, float] | None = None


def pruning_problem(tuner: TunerSection) -> str | None:
    """Why ``tuner.pruning`` cannot go with the rest of ``tuner``, or None when it can."""
    if tuner.pruning.kind == "none":
        return None
    if tuner.kind == "hyperband":
        return (f"pruning {tuner.pruning.kind!r} cannot go with tuner 'hyperband', which stops "
                f"trials by its own brackets; use random, grid, bayesian or tpe, or pruning: "
                f"{{kind: none}}")
    return None


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
