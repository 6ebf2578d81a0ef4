"""Canaries for every keras-tuner / TensorFlow internal that ``search/_keras_tuner.py`` uses.

Each test names the internal it guards, so an upgrade that moves one fails here with a message
that says what to fix, instead of a search breaking somewhere else. No training.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from tunetrack.search import _keras_tuner as door

SRC = Path(__file__).resolve().parents[1] / "src" / "tunetrack"


@pytest.fixture
def oracle(tmp_path: Path):
    """A random-search oracle with a project folder, as a tuner would set it up."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 4)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=3,
        hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "canary")
    return oracle


def test_written_for_the_pinned_versions():
    pins = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'"keras-tuner=={door.WRITTEN_FOR["keras-tuner"]}"' in pins, \
        "keras-tuner's pin in pyproject.toml moved: re-check every canary in this file"
    assert importlib.metadata.version("keras-tuner") == door.WRITTEN_FOR["keras-tuner"]


def test_private_api_is_used_from_one_module_only():
    users = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                   if re.search(r"keras_tuner\.src|tensorflow\.python", p.read_text()))
    assert users == ["search/_keras_tuner.py"], users


def test_config_debug_flag_exists():
    from keras_tuner.src import config

    assert isinstance(getattr(config, "DEBUG", None), bool), \
        "keras_tuner.src.config.DEBUG is gone: quiet_failed_trials() needs another switch"
    door.quiet_failed_trials()
    assert config.DEBUG is False


def test_populate_initial_space_hook_exists():
    from keras_tuner.src.engine.base_tuner import BaseTuner

    hook = getattr(BaseTuner, "_populate_initial_space", None)
    assert hook is not None, "BaseTuner._populate_initial_space is gone: declared_space_tuner()"
    assert list(inspect.signature(hook).parameters) == ["self"], \
        "BaseTuner._populate_initial_space changed its signature: declared_space_tuner()"
    source = inspect.getsource(BaseTuner.__init__)
    assert "_populate_initial_space" in source, \
        "BaseTuner.__init__ no longer calls _populate_initial_space: declared_space_tuner()"


def test_synchronized_wraps_end_trial(oracle):
    from keras_tuner.src.engine import oracle as oracle_module

    assert callable(getattr(oracle_module, "synchronized", None)), \
        "keras_tuner.src.engine.oracle.synchronized is gone: after_end_trial()"
    seen = []
    door.after_end_trial(oracle, lambda o: seen.append(len(o.trials)))
    assert seen == [0]  # called once at once
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert seen == [0, 1], "the end_trial hook did not run: Oracle.end_trial changed"
    assert type(oracle).__name__ == "RandomSearchOracle"


def test_oracle_retry_queue_and_locks(oracle):
    from keras_tuner.src.engine.oracle import LOCKS

    assert isinstance(getattr(oracle, "_retry_queue", None), list), \
        "Oracle._retry_queue is gone: requeue()"
    assert hasattr(LOCKS[oracle], "acquire"), "keras_tuner.src.engine.oracle.LOCKS: requeue()"
    trial = oracle.create_trial("tuner7")
    assert door.requeue(oracle, "tuner7") == trial.trial_id
    assert oracle._retry_queue == [trial.trial_id]
    assert door.retries_pending(oracle) == 1
    assert door.budget_spent(oracle) is False  # max_trials=3, one trial so far
    assert "tuner7" not in oracle.ongoing_trials
    assert door.requeue(oracle, "tuner7") is None
    # keras-tuner hands the requeued trial to the next worker that asks
    assert oracle.create_trial("tuner8").trial_id == trial.trial_id


def test_oracle_saves_are_atomic(oracle, tmp_path: Path):
    import json

    door.atomic_saves(oracle)
    trial = oracle.create_trial("tuner0")  # saves the oracle and the trial
    state = json.loads((tmp_path / "canary" / "oracle.json").read_text())
    assert state["ongoing_trials"] == {"tuner0": trial.trial_id}, \
        "Oracle.save/_save_trial changed: atomic_saves()"
    saved = tmp_path / "canary" / f"trial_{trial.trial_id}" / "trial.json"
    assert json.loads(saved.read_text())["trial_id"] == trial.trial_id
    assert not list(tmp_path.rglob("*.tmp"))


def test_check_consecutive_failures_raises_runtime_error(oracle):
    oracle.max_consecutive_failed_trials = 1
    door.check_consecutive_failures(oracle)  # nothing failed yet
    trial = oracle.create_trial("tuner0")
    trial.status = "FAILED"
    with pytest.raises(RuntimeError, match="consecutive failures"):
        oracle.end_trial(trial)
    with pytest.raises(RuntimeError, match="consecutive failures"):
        door.check_consecutive_failures(oracle)


def test_oracle_servicer_serves_and_reports_stop(oracle):
    import grpc
    from keras_tuner.src import protos

    server, servicer, port = door.serve_oracle(oracle, "127.0.0.1:0")
    try:
        assert port > 0
        assert door.stop_requested(servicer) is False, "OracleServicer.stop_triggered is gone"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = protos.get_service_grpc().OracleStub(channel)
            space = stub.GetSpace(protos.get_service().GetSpaceRequest(), timeout=10)
        assert [hp.name for hp in space.hyperparameters.space.int_space] == ["units"]
    finally:
        server.stop(grace=0)


def test_heartbeat_is_answered_beside_the_oracle(oracle):
    import grpc

    beats: list[str] = []
    server, _, port = door.serve_oracle(oracle, "127.0.0.1:0",
                                        on_heartbeat=lambda text: beats.append(text) or "ok")
    try:
        send = door.heartbeat(f"127.0.0.1:{port}")
        assert send("hostB-0/abc", 10) == "ok", "GetTrialRequest/Trial protos changed: heartbeat()"
        assert beats == ["hostB-0/abc"]
        trial = oracle.create_trial("tuner0")  # a real GetTrial still reaches the oracle
        assert door.ongoing_tuners(oracle) == ["tuner0"]
        from keras_tuner.src import protos

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = protos.get_service_grpc().OracleStub(channel).GetTrial(
                protos.get_service().GetTrialRequest(trial_id=trial.trial_id), timeout=10)
        assert reply.trial.trial_id == trial.trial_id
    finally:
        server.stop(grace=0)
    with pytest.raises(grpc.RpcError):
        send("hostB-0/abc", 1)


def test_tried_before_sees_the_oracles_duplicates(oracle):
    trial = oracle.create_trial("tuner0")
    values = dict(trial.hyperparameters.values)
    tried, earlier = door.tried_before(oracle, values)
    assert tried and earlier is trial, \
        "Oracle._compute_values_hash/_tried_so_far/_id_to_hash moved: tried_before()"
    assert door.tried_before(oracle, {"units": 99}) == (False, None)


def test_tensorflow_gradient_registry_is_reachable():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the gradient-registry release is TensorFlow-only")
    registry = door._gradient_registry()
    assert registry is not None, \
        "tensorflow.python.framework.ops.gradient_registry._registry moved: release_trial_graphs()"
    registry["CustomGradient-canary"] = object()
    try:
        assert door.release_trial_graphs(door.custom_gradient_names() - {
            "CustomGradient-canary"}) >= 1
        assert "CustomGradient-canary" not in registry
    finally:
        registry.pop("CustomGradient-canary", None)


def test_run_trial_adds_the_weight_checkpoint_that_tunetrack_drops(tmp_path: Path):
    """keras-tuner's Tuner.run_trial hands fit() a SaveBestEpoch; the door removes exactly it."""
    import keras
    import keras_tuner

    from tunetrack.search._keras_tuner import without_weight_checkpoints

    seen: list[list[Any]] = []

    class Model(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(list(kwargs["callbacks"]))
            return {"score": 1.0}

    tuner = keras_tuner.RandomSearch(Model(), objective=keras_tuner.Objective("score", "max"),
                                     max_trials=1, directory=str(tmp_path), project_name="p")
    mine = keras.callbacks.TerminateOnNaN()
    tuner.search(callbacks=[mine], verbose=0)
    kinds = [type(c).__name__ for c in seen[0]]
    assert "SaveBestEpoch" in kinds, f"keras-tuner no longer adds SaveBestEpoch: {kinds}"
    kept = without_weight_checkpoints(seen[0])
    assert len(kept) == len(seen[0]) - 1 and all(type(c).__name__ != "SaveBestEpoch"
                                                 for c in kept)
