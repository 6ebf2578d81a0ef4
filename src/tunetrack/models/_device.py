"""Where a trial trains and at which precision, on any Keras backend.

Device selection is Keras's: every visible accelerator (``CUDA_VISIBLE_DEVICES`` respected),
else the CPU. ``training.mixed_precision`` computes in float16 on a GPU (float32 variables, loss
scaling added by Keras's ``compile``) and in bfloat16 on a CPU or TPU; ``training.jit_compile``
is passed to ``compile`` (None: Keras's ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras


def devices() -> list[str]:
    """``keras.distribution.list_devices()``: e.g. ``['cpu:0']`` or ``['gpu:0', 'gpu:1']``."""
    try:
        return [str(d).lower() for d in keras.distribution.list_devices()]
    except Exception:  # noqa: BLE001 - a backend without the API (torch): ask it directly
        if keras.backend.backend() == "torch":
            import torch

            n = torch.cuda.device_count()
            return [f"cuda:{i}" for i in range(n)] or ["cpu:0"]
        return ["cpu:0"]


def has_gpu(found: list[str] | None = None) -> bool:
    return any(d.startswith(("gpu", "cuda")) for d in (devices() if found is None else found))


def device_tag() -> str:
    """What a trial run records: ``jax:gpu:0,gpu:1`` (backend, then the devices Keras sees)."""
    return f"{keras.backend.backend()}:{','.join(devices())}"


def precision_policy(mixed: bool) -> str:
    """The dtype policy ``training.mixed_precision`` means on this machine."""
    if not mixed:
        return "float32"
    return "mixed_float16" if has_gpu() else "mixed_bfloat16"


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under ``name`` and put the global policy back afterwards; the layers keep
    theirs, and a saved model records it."""
    before: Any = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def compile_options(jit_compile: bool | None) -> dict[str, Any]:
    """Extra ``model.compile`` keywords for ``training.jit_compile``."""
    return {} if jit_compile is None else {"jit_compile": bool(jit_compile)}
