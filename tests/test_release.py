"""search/release.py: what a finished trial leaves in the process is released, on every backend."""

from __future__ import annotations

import gc
from collections import Counter

import pytest

from tunetrack.search import release

pytestmark = pytest.mark.core


def _traced() -> Counter[str]:
    """Live jaxprs by kind: what jax's trace caches hold."""
    gc.collect()
    kinds = ("ClosedJaxpr", "Jaxpr", "JaxprEqn")
    return Counter(type(o).__name__ for o in gc.get_objects() if type(o).__name__ in kinds)


def test_jax_caches_held_per_shape_are_released():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    release.release_backend_caches()
    base = _traced()
    for n in range(3, 9):  # a new architecture's shapes: each one cached by functions that live
        jnp.matmul(jnp.ones((n, n + 1)), jnp.ones((n + 1, 2))).block_until_ready()
        jax.random.normal(jax.random.key(0), (n, 3)).block_until_ready()
    grown = _traced()
    assert grown["ClosedJaxpr"] >= base["ClosedJaxpr"] + 6, (base, grown)
    assert release.release_backend_caches() == ["jax"]
    after = _traced()
    assert after["ClosedJaxpr"] <= base["ClosedJaxpr"] and after["JaxprEqn"] <= base["JaxprEqn"]
    # and jax still works: the next call traces its shape again
    assert float(jnp.matmul(jnp.ones((3, 4)), jnp.ones((4, 2))).sum()) == 24.0


def test_release_trial_covers_the_tensorflow_registry_too():
    import keras

    from tunetrack.search import _keras_tuner as door

    released = release.release_trial(door.custom_gradient_names())
    assert "tensorflow" not in released  # nothing was traced since
    if keras.backend.backend() != "tensorflow":
        return
    registry = door._gradient_registry()
    assert registry is not None
    before = door.custom_gradient_names()
    registry["CustomGradient-release-canary"] = object()
    try:
        assert "tensorflow" in release.release_trial(before)
        assert "CustomGradient-release-canary" not in registry
    finally:
        registry.pop("CustomGradient-release-canary", None)
