"""What a finished trial leaves in the process, released before the next one, on every backend.

A search builds a new architecture every trial; the backends cache what they traced and
compiled for it, process-wide, and a model's own references are not the only ones:

- TensorFlow registers a custom gradient per traced train step in a global registry that
  nothing unregisters (``_keras_tuner.release_trial_graphs``, private API, behind the door).
- jax caches every traced jaxpr and compiled executable, keyed by function and shapes: the jitted
  ``jax.numpy`` functions, the initialisers, optimiser and metric updates Keras runs eagerly
  at build time. Those functions live for the whole process, so each new architecture's shapes
  add entries that are never evicted (measured: ~2,000 more live Python objects, jaxprs
  mostly, after each trial of a search of tiny CNNs). ``jax.clear_caches()`` (public API) drops
  them; the next trial traces its own shapes again, which it would do anyway.
- The C allocator keeps what a trial freed: XLA's compilation and the trial's arrays are
  allocated from glibc's per-thread arenas, which return little to the system on their own.
  Measured under jax: ~190 MiB free but resident at every trial's end, and it creeps up as
  the arenas fragment. ``malloc_trim(0)`` hands it back (glibc only; elsewhere a no-op).

Keras's ``clear_session()`` (which keras-tuner calls before every build) resets Keras's own
state and TensorFlow's default graph, but none of the above.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any


def release_backend_caches() -> list[str]:
    """Drop the trace and compilation caches of the array libraries this process has loaded
    (jax today; TensorFlow's and torch's are reset by ``keras.backend.clear_session``); returns
    what was released. Safe between trials: no model in use is touched, a cached function is
    traced again on its next call."""
    released = []
    jax: Any = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "clear_caches"):
        jax.clear_caches()
        released.append("jax")
    return released


def trim_heap() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim(0)``); False where
    the C library has no such call (macOS, musl, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def release_trial(before: set[str]) -> list[str]:
    """Everything a finished trial leaves behind: TensorFlow's gradient-registry entries added
    since ``before`` (``_keras_tuner.custom_gradient_names()`` at the trial's start), the
    backends' caches, then the heap's free pages. Call it once the trial's model is no longer
    needed; returns what was released (``"tensorflow"``, ``"jax"``, ``"heap"``)."""
    from tunetrack.search import _keras_tuner as kt_internal

    released = ["tensorflow"] if kt_internal.release_trial_graphs(before) else []
    released += release_backend_caches()
    return released + (["heap"] if trim_heap() else [])


__all__ = ["release_backend_caches", "release_trial", "trim_heap"]
