"""Keras 3 model builders for every family in :mod:`tunetrack.space.catalog`.

The builders follow the keras-free arithmetic of :mod:`tunetrack.space.plan` layer by layer.
keras is imported only when a builder is first used (``build_model``, ``compile_kwargs``,
``outputs_probabilities``, ``squared_error``), so ``featurize``, ``input_shape`` and the
hand-made extractors in :mod:`tunetrack.models.features` work without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tunetrack.models._inputs import featurize, input_shape

if TYPE_CHECKING:
    from tunetrack.models._build import build_model, served_model
    from tunetrack.models._compile import compile_kwargs, outputs_probabilities, squared_error
    from tunetrack.models._device import (
        compile_options,
        device_tag,
        devices,
        dtype_policy,
        precision_policy,
    )

__all__ = ["build_model", "compile_kwargs", "featurize", "input_shape",
           "outputs_probabilities", "served_model", "squared_error",
           "compile_options", "device_tag", "devices", "dtype_policy", "precision_policy"]

_LAZY = {"build_model": "_build", "served_model": "_build", "compile_kwargs": "_compile",
         "outputs_probabilities": "_compile", "squared_error": "_compile",
         **dict.fromkeys(("compile_options", "device_tag", "devices", "dtype_policy",
                          "precision_policy"), "_device")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
