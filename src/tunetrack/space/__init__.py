"""The search-space and pipeline languages, their validation, and the plan arithmetic.

Pure Python: nothing here imports keras, TensorFlow, keras-tuner or MLflow, so files are
checked and candidates planned (shapes, parameters, FLOPs) before any of those is loaded.
"""

from __future__ import annotations

from tunetrack.space._config import (
    BAD_IMAGE_POLICIES,
    COLOR_MODES,
    DATA_CACHE_MODES,
    DIRECTIONS,
    KERAS_DATASETS,
    OBJECTIVES,
    Constraints,
    DataConfig,
    TrainingSection,
    TunerSection,
)
from tunetrack.space.catalog import FAMILIES
from tunetrack.space.language import Space, load_space
from tunetrack.space.pipeline import Pipeline, file_digest, load_pipeline
from tunetrack.space.plan import (
    LayerPlan,
    LayerSpec,
    Plan,
    check_constraints,
    feature_length,
    plan_candidate,
    plan_layers,
)
from tunetrack.space.yamlio import Document, load_yaml

__all__ = [
    "BAD_IMAGE_POLICIES", "COLOR_MODES", "DIRECTIONS", "FAMILIES", "KERAS_DATASETS", "OBJECTIVES",
    "DATA_CACHE_MODES",
    "Constraints",
    "DataConfig", "Document", "LayerPlan", "LayerSpec", "Pipeline", "Plan", "Space",
    "TrainingSection", "TunerSection", "check_constraints", "feature_length", "file_digest",
    "load_pipeline", "load_space", "load_yaml", "plan_candidate", "plan_layers",
]
