"""``tunetrack validate``: check pipeline and space files, reporting every problem at once."""

from __future__ import annotations

from pathlib import Path

from tunetrack.errors import ConfigError, PipelineError
from tunetrack.space.yamlio import load_yaml

PIPELINE_KEYS = ("space", "tuner", "data", "training", "objective")


def kind_of(path: str | Path) -> str:
    """``"space"`` or ``"pipeline"``, judged by the file's top-level keys."""
    doc = load_yaml(path)
    if isinstance(doc.data, dict) and "family" in doc.data:
        return "space"
    if isinstance(doc.data, dict) and any(k in doc.data for k in PIPELINE_KEYS):
        return "pipeline"
    raise ConfigError("not a tunetrack file: a space has 'family:', a pipeline has 'space:'",
                      file=str(path), line=1)


def validate_file(path: str | Path) -> list[str]:
    """Every problem of one file (and of the space a pipeline names), as ``FILE:LINE: message``."""
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
    return []


def validate_files(paths: tuple[str, ...] | list[str]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        problems.extend(validate_file(path))
    return problems
