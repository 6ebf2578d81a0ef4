"""MLflow tag, metric and status names, and the objectives tunetrack knows: users query these,
so they live in one place. A leaf module: it imports nothing of tunetrack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum

# -- tags every run kind carries -------------------------------------------------------------
TAG_ROLE = "tunetrack.role"
TAG_PARENT = "mlflow.parentRunId"
TAG_REASON = "tunetrack.reason"
TAG_FAMILY = "tunetrack.family"
TAG_TUNER = "tunetrack.tuner"
TAG_SEED = "tunetrack.seed"
# MLflow's own: the run description (markdown the UI shows whole) and the run's name.
TAG_NOTE = "mlflow.note.content"
TAG_RUN_NAME = "mlflow.runName"
# An experiment tag: "custom_model_development" opens MLflow 3's UI on runs and models, not
# the GenAI overview (traces); ``?workflowType=machine_learning`` in a URL does the same.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_ML = "custom_model_development"

# -- a search (parent) run ---------------------------------------------------------------------
TAG_PIPELINE = "tunetrack.pipeline"
TAG_SPACE = "tunetrack.space"
TAG_OBJECTIVE = "tunetrack.objective"
TAG_DIRECTION = "tunetrack.direction"
TAG_BEST_TRIAL = "tunetrack.best_trial_id"
TAG_BEST_RUN = "tunetrack.best_run_id"
TAG_SEARCH_KEY = "tunetrack.search_key"
TAG_GIT_COMMIT = "tunetrack.git_commit"
TAG_VERSIONS = "tunetrack.versions"
TAG_CLASSES = "tunetrack.class_names"
TAG_DATA_FINGERPRINT = "tunetrack.data_fingerprint"
TAG_PIPELINE_SHA = "tunetrack.pipeline_sha256"
TAG_SPACE_SHA = "tunetrack.space_sha256"
TAG_OVERRIDES = "tunetrack.overrides"
TAG_OWNER = "tunetrack.owner"  # host:pid of the process running the search
TAG_RESUMED = "tunetrack.resumed"  # how many times it was resumed
TAG_WORKERS = "tunetrack.workers"  # local workers of a parallel search
TAG_STOP_REASON = "tunetrack.stop_reason"  # why it ended before its budget (--max-minutes)

# -- a trial (child) run -----------------------------------------------------------------------
TAG_TRIAL_ID = "tunetrack.trial_id"
TAG_TRIAL_STATUS = "tunetrack.trial_status"
# TAG_REASON on a trial is short ("params > 200k", "NaN loss"): what the runs table can show.
# The whole reason is the run's description (TAG_NOTE); see :func:`full_reason`.
TAG_REJECT_KIND = "tunetrack.reject_kind"  # "impossible" or "constraint"
TAG_WORKER = "tunetrack.worker"  # keras-tuner tuner id of the worker that trained it
TAG_DEVICE = "tunetrack.device"  # keras backend and the devices it trains on: "jax:gpu:0"
TAG_PRECISION = "tunetrack.precision"  # dtype policy: float32, mixed_float16, mixed_bfloat16
# Seed repeats (``--repeats N``): each training of a candidate is a run nested under the
# candidate's run (role "repeat", TAG_REPEAT its 1-based number); the candidate holds the
# per-repeat objective values as a JSON list and the METRIC_REPEATS_* summary.
TAG_REPEAT = "tunetrack.repeat"
TAG_REPEAT_SCORES = "tunetrack.repeat_scores"
TAG_REPEAT_KEPT = "tunetrack.repeat_kept"  # the repeat whose model the candidate keeps
# A trial retried after running out of memory: TAG_RETRY=RETRY_OOM_HALF_BATCH, and the batch
# size it trained (or failed again) with.
TAG_RETRY = "tunetrack.retry"
RETRY_OOM_HALF_BATCH = "oom_half_batch"
TAG_BATCH_SIZE = "tunetrack.batch_size"
TAG_RETRY_OF = "tunetrack.retry_of"  # the KILLED run of the same trial this run retries
TAG_PRUNER = "tunetrack.pruner"  # a pruned trial: which rule stopped it (median, asha)

ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
ROLE_PROMOTION = "promotion"
ROLE_REPEAT = "repeat"

# -- metrics -----------------------------------------------------------------------------------
# Grouped by "/" prefix: MLflow 3's chart view makes a section of each prefix, prefixed
# sections first (alphabetically), unprefixed ones ("Model metrics") last.
# A trial: its learning curves are "<keras metric>/train" and "<keras metric>/val" (see
# curve_name), one value per epoch. Epochs count from 1 everywhere: step 1 is the first epoch,
# and METRIC_BEST_EPOCH is the step of the best objective value (the weights that are kept).
# Its scores ``best_<keras metric>`` and ``final_<keras metric>`` are unprefixed, so sorting the
# runs table by ``best_val_accuracy`` ranks trials only.
METRIC_PARAMS_TOTAL = "size/params"
METRIC_PARAMS_TRAINABLE = "size/trainable_params"
METRIC_FLOPS = "size/flops_per_example"
METRIC_TRAIN_SECONDS = "training/seconds"
METRIC_BEST_EPOCH = "training/best_epoch"
METRIC_EPOCHS_TRAINED = "training/epochs"
METRIC_PRUNED_AT = "training/pruned_at_epoch"  # a pruned trial: the epoch it stopped after
# A search run's summary: its own "search/" names, never a trial's.
METRIC_TRIALS_COMPLETED = "search/trials_completed"
METRIC_TRIALS_REJECTED = "search/trials_rejected"
METRIC_TRIALS_FAILED = "search/trials_failed"
METRIC_TRIALS_PRUNED = "search/trials_pruned"
METRIC_SEARCH_SECONDS = "search/seconds"
# A candidate trained several times (seed repeats): its objective over the repeats.
METRIC_REPEATS_N = "repeats/n"
METRIC_REPEATS_MEAN = "repeats/mean"
METRIC_REPEATS_STD = "repeats/std"
METRIC_REPEATS_CI_LOW = "repeats/ci95_low"
METRIC_REPEATS_CI_HIGH = "repeats/ci95_high"
# What tunetrack 0.1 called them: read as a fallback, so its stores still compare and resume.
LEGACY_METRICS = {METRIC_PARAMS_TOTAL: "params_total", METRIC_PARAMS_TRAINABLE: "params_trainable",
                  METRIC_FLOPS: "flops_per_example", METRIC_TRAIN_SECONDS: "train_seconds",
                  METRIC_BEST_EPOCH: "best_epoch", METRIC_EPOCHS_TRAINED: "epochs_trained",
                  METRIC_SEARCH_SECONDS: "search_seconds"}


def read_metric(metrics: Mapping[str, float], name: str, default: float | None = None
                ) -> float | None:
    """``metrics[name]``, else the value under its tunetrack 0.1 name, else ``default``."""
    if name in metrics:
        return metrics[name]
    return metrics.get(LEGACY_METRICS.get(name, name), default)
# A promotion run: the sealed test split's verdict (per-class figures: the test_per_class.csv
# artifact, not metrics).
METRIC_TEST_ACCURACY = "test/accuracy"
METRIC_TEST_LOSS = "test/loss"
METRIC_CHAMPION_TEST_ACCURACY = "test/champion_accuracy"
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def curve_name(keras_key: str) -> str:
    """A Keras history key as a trial's curve: ``val_accuracy`` -> ``accuracy/val``,
    ``loss`` -> ``loss/train``; train and validation of one metric share a chart section."""
    if keras_key.startswith("val_"):
        return f"{keras_key[len('val_'):]}/val"
    return f"{keras_key}/train"


def search_best(objective: str) -> str:
    """The search run's best score: ``search/best_val_accuracy``."""
    return f"search/best_{objective}"


def full_reason(tags: dict[str, str]) -> str | None:
    """Why a trial was not trained to the end: its description, else its short reason tag."""
    status = tags.get(TAG_TRIAL_STATUS)
    if status and status != "completed" and tags.get(TAG_NOTE):
        return tags[TAG_NOTE].split("\n", 1)[0].strip() or tags.get(TAG_REASON)
    return tags.get(TAG_REASON)


# -- objectives --------------------------------------------------------------------------------
# The metrics Keras logs for every family, and which way is better. A pipeline may state the
# direction; for these names it is inferred when unstated.
OBJECTIVE_DIRECTIONS = {"val_accuracy": "max", "val_loss": "min", "accuracy": "max",
                        "loss": "min",
                        "val_macro_f1": "max"}  # search/imbalance.py: every trial logs it
DIRECTIONS = ("min", "max")


def chance_score(objective: str, num_classes: int) -> float | None:
    """What a model that learned nothing scores (uniform guesses), in the objective's own units.

    Accuracy: ``1 / C``; cross-entropy: ``ln C``. None for a metric without such a baseline.
    """
    if objective.endswith("accuracy") or objective.endswith("macro_f1"):
        return 1.0 / num_classes  # macro-F1 of uniform guesses on balanced classes: 1 / C
    if objective.endswith("loss"):
        return math.log(num_classes)
    return None


class TrialStatus(StrEnum):
    """What became of one candidate. ``str`` so it can be written as an MLflow tag directly."""

    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    KILLED = "killed"
    PRUNED = "pruned"  # trained, then stopped early by the search's pruner (tuner.pruning)

    def is_trained(self) -> bool:
        """A model was trained and scored (a pruned trial too, on fewer epochs)."""
        return self in (TrialStatus.COMPLETED, TrialStatus.PRUNED)


class RunStatus(StrEnum):
    """The MLflow run statuses tunetrack writes (``MlflowClient.set_terminated``)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    def is_resumable(self) -> bool:
        """An interrupted search (still RUNNING after a kill -9, or KILLED) can continue."""
        return self in (RunStatus.RUNNING, RunStatus.KILLED)
