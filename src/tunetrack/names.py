"""MLflow tag, metric and status names, and the objectives tunetrack knows: users query these,
so they live in one place. A leaf module: it imports nothing of tunetrack.
"""

from __future__ import annotations

import math
from enum import StrEnum

# -- tags every run kind carries -------------------------------------------------------------
TAG_ROLE = "tunetrack.role"
TAG_PARENT = "mlflow.parentRunId"
TAG_REASON = "tunetrack.reason"
TAG_FAMILY = "tunetrack.family"
TAG_TUNER = "tunetrack.tuner"
TAG_SEED = "tunetrack.seed"

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
TAG_REJECT_KIND = "tunetrack.reject_kind"  # "impossible" or "constraint"
TAG_WORKER = "tunetrack.worker"  # keras-tuner tuner id of the worker that trained it

ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
ROLE_PROMOTION = "promotion"

# -- metrics -----------------------------------------------------------------------------------
METRIC_PARAMS_TOTAL = "params_total"
METRIC_PARAMS_TRAINABLE = "params_trainable"
METRIC_FLOPS = "flops_per_example"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_BEST_EPOCH = "best_epoch"  # 1-based: the epoch number a user reads on the curve + 1
METRIC_EPOCHS_TRAINED = "epochs_trained"
METRIC_TRIALS_COMPLETED = "trials_completed"
METRIC_TRIALS_REJECTED = "trials_rejected"
METRIC_TRIALS_FAILED = "trials_failed"
METRIC_SEARCH_SECONDS = "search_seconds"
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")

# -- objectives --------------------------------------------------------------------------------
# The metrics Keras logs for every family, and which way is better. A pipeline may state the
# direction; for these names it is inferred when unstated.
OBJECTIVE_DIRECTIONS = {"val_accuracy": "max", "val_loss": "min", "accuracy": "max",
                        "loss": "min"}
DIRECTIONS = ("min", "max")


def chance_score(objective: str, num_classes: int) -> float | None:
    """What a model that learned nothing scores (uniform guesses), in the objective's own units.

    Accuracy: ``1 / C``; cross-entropy: ``ln C``. None for a metric without such a baseline.
    """
    if objective.endswith("accuracy"):
        return 1.0 / num_classes
    if objective.endswith("loss"):
        return math.log(num_classes)
    return None


class TrialStatus(StrEnum):
    """What became of one candidate. ``str`` so it can be written as an MLflow tag directly."""

    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    KILLED = "killed"

    def is_trained(self) -> bool:
        return self is TrialStatus.COMPLETED


class RunStatus(StrEnum):
    """The MLflow run statuses tunetrack writes (``MlflowClient.set_terminated``)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    def is_resumable(self) -> bool:
        """An interrupted search (still RUNNING after a kill -9, or KILLED) can continue."""
        return self in (RunStatus.RUNNING, RunStatus.KILLED)
