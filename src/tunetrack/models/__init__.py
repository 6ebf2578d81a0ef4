"""Keras 3 model builders for every family in ``tunetrack.catalog``.

Importing this package imports keras; ``tunetrack.plan`` holds the keras-free arithmetic that
these builders follow layer by layer.
"""

from __future__ import annotations

from tunetrack.models._build import build_model
from tunetrack.models._compile import compile_kwargs, outputs_probabilities, squared_error
from tunetrack.models._inputs import featurize, input_shape

__all__ = ["build_model", "compile_kwargs", "featurize", "input_shape",
           "outputs_probabilities", "squared_error"]
