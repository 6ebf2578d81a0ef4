"""``tunetrack validate``: check pipeline and space files, reporting every problem at once.

What ``validate`` calls ok, ``search`` must not refuse before training: besides each file's own
rules, a pipeline's data is inspected the way the search loads it (by the ``inspect_data``
callable the CLI passes, :func:`tunetrack.data.inspect_source`, since this package sits below
``tunetrack.data``), and a bounded sample of its space's candidates is planned on that data's
image shape, so a space no candidate of which can be trained is refused here.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunetrack.errors import CandidateRejected, ConfigError, PipelineError, TunetrackError
from tunetrack.space.yamlio import load_yaml

PIPELINE_KEYS = ("space", "tuner", "data", "training", "objective")
FIT_SAMPLES = 200  # candidates planned at most per pipeline (~10 ms each)
MAX_PROBLEMS = 20  # per file: a file of 2,000 unknown keys gets 20 lines and a count
MAX_LINE = 1000  # characters of one problem line (an unknown key lists every allowed one)

# a pipeline's DataConfig -> its image_shape, num_classes (None: unknown) and a note; raises what
# loading the data would raise
InspectData = Callable[[Any], Any]


def kind_of(path: str | Path) -> str:
    """``"space"`` or ``"pipeline"``, judged by the file's top-level keys."""
    doc = load_yaml(path)
    if isinstance(doc.data, dict) and "family" in doc.data:
        return "space"
    if isinstance(doc.data, dict) and any(k in doc.data for k in PIPELINE_KEYS):
        return "pipeline"
    raise ConfigError("not a tunetrack file: a space has 'family:', a pipeline has 'space:'",
                      file=str(path), line=1)


# what a rejection is about -> (one rejected, several rejected)
_KINDS = {"max_params": ("every one exceeds max_params", "exceed max_params"),
          "max_flops": ("every one exceeds max_flops", "exceed max_flops"),
          "min_feature_map": ("every one breaks min_feature_map", "break min_feature_map"),
          "impossible": ("none fits the input", "do not fit the input")}


def _kind(rejected: CandidateRejected) -> str:
    """The constraint a rejection breaks, else ``impossible``."""
    if rejected.kind == "constraint":
        for name in ("max_params", "max_flops", "min_feature_map"):
            if name in rejected.reason:
                return name
    return "impossible"


def fit_problem(space: Any, constraints: Any, image_shape: Sequence[int], num_classes: int,
                samples: int = FIT_SAMPLES, seed: int = 0) -> str | None:
    """None when a candidate of ``space`` can be planned on ``image_shape`` within
    ``constraints`` (the defaults first, then random ones, ``samples`` in all), else why not:
    ``no candidate fits 8×8×1 images and 10 classes: 200 sampled, every one exceeds
    max_params (e.g. ...)``."""
    from tunetrack.space.plan import check_constraints, plan_candidate

    rng = random.Random(seed)
    kinds: Counter[str] = Counter()
    example: dict[str, str] = {}
    for i in range(max(1, samples)):
        candidate = space.defaults() if i == 0 else space.sample(rng)
        try:
            check_constraints(plan_candidate(space.family, candidate, tuple(image_shape),
                                             num_classes), constraints)
            return None
        except CandidateRejected as rejected:
            kind = _kind(rejected)
            kinds[kind] += 1
            example.setdefault(kind, rejected.reason)
    head = (f"no candidate fits {'×'.join(map(str, image_shape))} images and {num_classes} "
            f"classes: {max(1, samples)} sampled")
    first = kinds.most_common(1)[0][0]
    if len(kinds) == 1:
        return f"{head}, {_KINDS[first][0]} (e.g. {example[first]})"
    parts = ", ".join(f"{n} {_KINDS[k][1]}" for k, n in kinds.most_common())
    return f"{head}, every one rejected: {parts} (e.g. {example[first]})"


def _data_problems(pipeline: Any, space: Any, inspect_data: InspectData,
                   notes: list[str]) -> list[str]:
    """What loading the pipeline's data would refuse, then whether any candidate fits it."""
    doc = load_yaml(pipeline.path)
    where = f"{pipeline.path}:{doc.line('data', 'source')}: data.source: "
    try:
        info = inspect_data(pipeline.data)
    except ConfigError as error:
        return [f"{pipeline.path}:{doc.line(*(error.key or 'data').split('.'))}: "
                f"{error.key or 'data'}: {error.detail}"]
    except TunetrackError as error:
        return [where + str(error)]
    if info.num_classes is None:
        notes.append(f"{where}note: {info.note}")
        return []
    constraints = space.constraints.merged(pipeline.constraints)
    why = fit_problem(space, constraints, info.image_shape, info.num_classes)
    if why is None:
        return []
    key = "constraints" if "constraints" in doc.data else "space"
    return [f"{pipeline.path}:{doc.line(key)}: {key}: {why}"]


def validate_file(path: str | Path, inspect_data: InspectData | None = None,
                  notes: list[str] | None = None) -> list[str]:
    """Every problem of one file (and of the space a pipeline names), as ``FILE:LINE: message``.

    With ``inspect_data`` (:func:`tunetrack.data.inspect_source`), a pipeline's data and the fit
    of its space are checked too; without it, only the files. What could not be checked is
    appended to ``notes``.
    """
    from tunetrack.space.language import load_space
    from tunetrack.space.pipeline import load_pipeline

    try:
        if kind_of(path) == "space":
            load_space(path)
            return []
        pipeline = load_pipeline(path)
        space = load_space(pipeline.space)
        if pipeline.tuner.kind == "grid" and (why := space.grid_ready()):
            raise PipelineError(f"the grid tuner needs finite choices: {why}", file=str(path),
                                key="tuner.kind")
    except ConfigError as error:
        return [p.format() for p in error.problems]
    if inspect_data is None:
        return []
    return _data_problems(pipeline, space, inspect_data, [] if notes is None else notes)


def _bounded(problems: list[str]) -> list[str]:
    """At most :data:`MAX_PROBLEMS` lines of at most :data:`MAX_LINE` characters."""
    lines = [p if len(p) <= MAX_LINE else p[:MAX_LINE - 1] + "…"
             for p in (" ".join(p.splitlines()) for p in problems[:MAX_PROBLEMS])]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"… and {len(problems) - MAX_PROBLEMS} more problems")
    return lines


def validate_files(paths: tuple[str, ...] | list[str], inspect_data: InspectData | None = None,
                   notes: list[str] | None = None) -> list[str]:
    """The problems of every file, each file's bounded by :data:`MAX_PROBLEMS` lines."""
    problems: list[str] = []
    for path in paths:
        problems.extend(_bounded(validate_file(path, inspect_data, notes)))
    return problems
