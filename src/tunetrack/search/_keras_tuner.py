"""Every use of keras-tuner's and TensorFlow's private API, behind one door.

Each function says which public API is missing. ``tests/test_keras_tuner_door.py`` has a canary
per use: after an upgrade it fails with a message naming the internal that moved, instead of a
search breaking somewhere else. The canaries were written for the versions pinned in
pyproject.toml (keras-tuner 1.4.8, TensorFlow 2.21); nothing outside this module may import
``keras_tuner.src`` or ``tensorflow.python``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WRITTEN_FOR = {"keras-tuner": "1.4.8", "tensorflow": "2.21"}


# -- tuner ---------------------------------------------------------------------------------------
def quiet_failed_trials() -> None:
    """Stop keras-tuner printing every failed trial's traceback to stderr.

    Missing API: the only switch is the module global ``keras_tuner.src.config.DEBUG``.
    tunetrack keeps each traceback as the trial run's ``traceback.txt`` instead.
    """
    from keras_tuner.src import config

    config.DEBUG = False


def declared_space_tuner(base: type) -> type:
    """A subclass of the tuner class ``base`` that declares its space without building models.

    Missing API: keras-tuner discovers conditional hyperparameters by building the model once per
    scope in ``BaseTuner._populate_initial_space``, which costs a Keras build each and fails on an
    impossible default. The subclass overrides that hook to call ``self.declare_space(hp)``.
    """

    class DeclaredSpaceTuner(base):
        def declare_space(self, hp: Any) -> None:
            raise NotImplementedError

        def _populate_initial_space(self) -> None:
            hp = self.oracle.get_space()
            self.declare_space(hp)
            self.oracle.update_space(hp)

    return DeclaredSpaceTuner



def without_weight_checkpoints(callbacks: list[Any]) -> list[Any]:
    """``callbacks`` less the ``SaveBestEpoch`` that ``Tuner.run_trial`` adds to every fit.

    It writes the model's weights to keras-tuner's folder at each improving epoch so that
    ``get_best_models()`` can reload them (~0.07 s an epoch for a small CNN). tunetrack logs each
    trained model to MLflow and never reads those files, except under Hyperband, whose later
    rounds start from them: the caller keeps it there. Missing API: a tuner option not to
    checkpoint (``Tuner.run_trial`` appends it unconditionally).
    """
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    return [c for c in callbacks if not isinstance(c, SaveBestEpoch)]

# -- oracle --------------------------------------------------------------------------------------
def after_end_trial(oracle: Any, hook: Callable[[Any], None]) -> None:
    """Call ``hook(oracle)`` inside the oracle's lock after every ``end_trial`` (and once now).

    Missing API: an oracle has no callback for a finished trial, and ``max_trials`` is not part of
    its saved state. The oracle object is given a subclass of its own class (so keras-tuner's
    gRPC servicer, which holds the object, sees the hook too) whose ``end_trial`` is wrapped with
    keras-tuner's per-oracle lock decorator ``synchronized``.
    """
    from keras_tuner.src.engine.oracle import synchronized

    base = type(oracle)
    if getattr(base, "tunetrack_hooked", False):
        base = base.__mro__[1]

    class HookedOracle(base):  # type: ignore[misc, valid-type]
        tunetrack_hooked = True

        @synchronized
        def end_trial(self, trial: Any) -> None:
            super().end_trial(trial)
            hook(self)

    HookedOracle.__name__ = HookedOracle.__qualname__ = base.__name__
    oracle.__class__ = HookedOracle
    hook(oracle)


def tried_before(oracle: Any, values: dict[str, Any]) -> tuple[bool, Any]:
    """``(tried, trial)``: whether ``values`` (active ones) were proposed already, and by which
    trial (None if it is not known any more).

    Missing API: an oracle subclass that proposes its own values (``tpe.TPEOracle``) must not
    train a duplicate, as keras-tuner's own oracles avoid through the private
    ``_compute_values_hash``, ``_tried_so_far`` and ``_id_to_hash``.
    """
    digest = oracle._compute_values_hash(values)
    if digest not in oracle._tried_so_far:
        return False, None
    for trial_id, known in oracle._id_to_hash.items():
        if known == digest and trial_id in oracle.trials:
            return True, oracle.trials[trial_id]
    return True, None


def atomic_saves(oracle: Any) -> None:
    """The oracle writes ``oracle.json`` and each ``trial.json`` to a temporary file renamed
    over the old one, so a chief killed mid-write leaves a state ``--resume`` can reload.

    Missing API: keras-tuner's ``Oracle.save``/``_save_trial`` truncate the file, then write
    it; a ``kill -9`` in between left an empty ``oracle.json`` (seen in tests/test_cluster.py)
    and ``reload`` failed with a JSONDecodeError. The instance's two methods are replaced.
    """
    import os

    from keras_tuner.src.engine.stateful import Stateful

    def save() -> None:
        fname = oracle._get_oracle_fname()
        Stateful.save(oracle, fname + ".tmp")
        os.replace(fname + ".tmp", fname)

    def save_trial(trial: Any) -> None:
        fname = os.path.join(oracle._get_trial_dir(trial.trial_id), "trial.json")
        trial.save(fname + ".tmp")
        os.replace(fname + ".tmp", fname)

    oracle.save, oracle._save_trial = save, save_trial


def check_consecutive_failures(oracle: Any) -> None:
    """Raise ``RuntimeError`` if the oracle's consecutive-failure limit was reached.

    Missing API: the check runs only inside ``end_trial``; the chief of a parallel search, which
    trains nothing, asks once its workers are done.
    """
    oracle._check_consecutive_failures()


def requeue(oracle: Any, tuner_id: str) -> str | None:
    """Give the trial a dead worker held to the next worker that asks; returns its id.

    Missing API: keras-tuner requeues a worker's trial only when that worker reports it ended;
    a worker killed mid-trial never does, and its trial would stay "ongoing" forever. This takes
    the oracle's lock (``LOCKS[oracle]``) and appends to its private ``_retry_queue``, which is
    what ``end_trial`` does for a trial it retries.
    """
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        oracle.tuner_ids.discard(tuner_id)
        if trial is None:
            return None
        oracle._retry_queue.append(trial.trial_id)
        oracle.save()
        return str(trial.trial_id)


HEARTBEAT_PREFIX = "tunetrack-heartbeat/"


def serve_oracle(oracle: Any, address: str,
                 on_heartbeat: Callable[[str], str] | None = None,
                 hold: Callable[[str], bool] | None = None) -> tuple[Any, Any, int]:
    """keras-tuner's oracle servicer on a gRPC server of our own: ``(server, servicer, port)``.

    Missing API: ``keras_tuner.src.distribute.oracle_chief.start_server`` blocks, polls for the
    end only every 20 s and exits the process; the chief needs the server while it watches its
    workers. The servicer class and the generated gRPC registration come from private modules.
    keras-tuner has no liveness RPC either: a ``GetTrial`` for ``HEARTBEAT_PREFIX + text`` is
    answered by ``on_heartbeat(text)`` (its reply travels as the trial id), see :func:`heartbeat`.
    A ``CreateTrial`` from a worker waits while ``hold(tuner_id)`` is true (the search may yet
    requeue another worker's trial), instead of telling that worker to stop.
    """
    import time
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    class Servicer(OracleServicer):
        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            while hold is not None and context.is_active() and hold(request.tuner_id):
                time.sleep(0.5)
            return super().CreateTrial(request, context)

        def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
            if on_heartbeat is not None and request.trial_id.startswith(HEARTBEAT_PREFIX):
                reply = on_heartbeat(request.trial_id[len(HEARTBEAT_PREFIX):])
                return protos.get_service().GetTrialResponse(
                    trial=protos.get_proto().Trial(trial_id=reply))
            return super().GetTrial(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    if not port:
        raise OSError(f"cannot listen on {address} for the oracle")
    server.start()
    return server, servicer, port


def heartbeat(address: str) -> Callable[[str, float], str]:
    """A worker's side of :func:`serve_oracle`'s heartbeat: ``send(text, timeout) -> reply``.

    Missing API: the oracle stub class is generated into a private module. Raises
    ``grpc.RpcError`` when the chief does not answer within ``timeout`` seconds.
    """
    import grpc
    from keras_tuner.src import protos

    stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(address))

    def send(text: str, timeout: float) -> str:
        request = protos.get_service().GetTrialRequest(trial_id=HEARTBEAT_PREFIX + text)
        return str(stub.GetTrial(request, timeout=timeout).trial.trial_id)

    return send


def ongoing_tuners(oracle: Any) -> list[str]:
    """The tuner ids holding a trial now, read under the oracle's lock (``LOCKS[oracle]``)."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        return list(oracle.ongoing_trials)


def budget_spent(oracle: Any) -> bool:
    """Whether the oracle would tell the next worker to stop (its ``max_trials`` reached)."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        return bool(oracle.max_trials) and len(oracle.trials) >= oracle.max_trials


def retries_pending(oracle: Any) -> int:
    """How many requeued trials wait for a worker (the private ``_retry_queue``, see
    :func:`requeue`)."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        return len(oracle._retry_queue)


def stop_requested(servicer: Any) -> bool:
    """Whether a worker was told there are no trials left (``OracleServicer.stop_triggered``)."""
    return bool(servicer.stop_triggered)


# -- TensorFlow ------------------------------------------------------------------------------------
def _gradient_registry() -> dict[Any, Any] | None:
    """TensorFlow's process-global gradient registry; None on another backend or without TF."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def custom_gradient_names() -> set[str]:
    registry = _gradient_registry()
    return {k for k in registry if isinstance(k, str)} if registry is not None else set()


def release_trial_graphs(before: set[str]) -> int:
    """Free the traced train step a finished trial leaves in TensorFlow; returns entries dropped.

    Missing API: TF has no way to unregister a gradient. Keras's TensorFlow optimizer all-reduces
    gradients through the distribute replica context even without a strategy; that op is a
    custom gradient, which registers a closure under a new ``CustomGradient-<uid>`` name in the
    global gradient registry on every trace. The closure holds the traced graph's tensors, so
    every trial's train step would stay alive: ~4.4 MiB a trial, ``clear_session()``
    notwithstanding (tensorflow/tensorflow#97697). An entry is only read while its own graph is
    traced, so once the trial is over the entries it added can go.
    """
    registry = _gradient_registry()
    if registry is None:
        return 0
    stale = [k for k in registry
             if isinstance(k, str) and k.startswith("CustomGradient-") and k not in before]
    for key in stale:
        registry.pop(key, None)
    return len(stale)
