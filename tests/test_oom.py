"""Out-of-memory aware trials: recognised without importing any framework, retried once at half
the batch size, failed with the reason when the retry fails too. No real OOM: injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetrack import names
from tunetrack.search.oom import is_out_of_memory

from .conftest import write_pipeline


class ResourceExhaustedError(RuntimeError):
    """Named like TensorFlow's (tf.errors.ResourceExhaustedError)."""


class OutOfMemoryError(RuntimeError):
    """Named like torch's (torch.cuda.OutOfMemoryError)."""


class _Subclass(ResourceExhaustedError):
    pass


def test_out_of_memory_is_recognised_by_class_name_or_message():
    assert is_out_of_memory(ResourceExhaustedError("OOM when allocating tensor"))
    assert is_out_of_memory(_Subclass("x"))  # anywhere in the bases
    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to "
                                         "allocate 1073741824 bytes"))  # XLA / JAX
    try:
        try:
            raise MemoryError("host")
        except MemoryError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as wrapped:
        assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(RuntimeError("simulated out of memory"))  # words alone: no
    assert not is_out_of_memory(ValueError("shapes do not match"))
    assert not is_out_of_memory(FloatingPointError("loss became NaN at epoch 2"))


def _fit_spy(monkeypatch: pytest.MonkeyPatch, fails: callable) -> list[int]:
    """Record every ``Model.fit`` batch size; raise ``fails(batch_size)`` when it is not None."""
    import keras

    real_fit, sizes = keras.Model.fit, []

    def fit(self, *args, **kwargs):
        batch = kwargs.get("batch_size")
        if batch is None and hasattr(kwargs.get("x"), "batch_size"):  # a streamed PyDataset
            batch = kwargs["x"].batch_size
        sizes.append(batch)
        error = fails(batch)
        if error is not None:
            raise error
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return sizes


@pytest.mark.slow
def test_out_of_memory_trial_is_retried_once_at_half_batch(store, workdir: Path, monkeypatch):
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    sizes = _fit_spy(monkeypatch, lambda batch: ResourceExhaustedError(
        "OOM when allocating tensor with shape[64,8,8,16]") if batch == 64 else None)
    result = run_search(load_pipeline(write_pipeline(workdir, trials=1, epochs=1)))
    assert sizes == [64, 32]
    (trial,) = result.trials
    assert trial.status.value == "completed"
    run = store.get_run(trial.run_id)
    assert run.data.tags[names.TAG_RETRY] == names.RETRY_OOM_HALF_BATCH == "oom_half_batch"
    assert run.data.tags[names.TAG_BATCH_SIZE] == "32"
    assert run.data.params["batch_size"] == "64"  # the candidate as proposed
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_out_of_memory_again_fails_the_trial_with_that_reason(store, workdir: Path,
                                                              monkeypatch):
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    sizes = _fit_spy(monkeypatch, lambda batch: RuntimeError(
        f"RESOURCE_EXHAUSTED: Out of memory while trying to allocate {batch} MiB"))
    result = run_search(load_pipeline(write_pipeline(workdir, trials=1, epochs=1)))
    assert sizes == [64, 32]  # once, and once more at half: not again
    (trial,) = result.trials
    assert trial.status.value == "failed"
    assert trial.reason.startswith("OutOfMemoryRetryFailed: batch size 64 ran out of memory and "
                                   "the retry at 32 failed too: RuntimeError: RESOURCE_EXHAUSTED")
    run = store.get_run(trial.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[names.TAG_RETRY] == "oom_half_batch"
    assert run.data.tags[names.TAG_BATCH_SIZE] == "32"
    assert run.data.tags[names.TAG_REASON] == "OOM at batch 64 and 32"
    # the search's failure map shows the failed value
    artifacts = [a.path for a in store.list_artifacts(result.parent_run_id, "plots")]
    assert "plots/failure_map.png" in artifacts
