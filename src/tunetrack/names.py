"""MLflow tag, metric and status names: users query these, so they live in one place."""

from __future__ import annotations

from enum import StrEnum

TAG_ROLE = "tunetrack.role"
TAG_TRIAL_ID = "tunetrack.trial_id"
TAG_TRIAL_STATUS = "tunetrack.trial_status"
TAG_REASON = "tunetrack.reason"
TAG_FAMILY = "tunetrack.family"
TAG_TUNER = "tunetrack.tuner"
TAG_SEED = "tunetrack.seed"
TAG_PIPELINE = "tunetrack.pipeline"
TAG_SPACE = "tunetrack.space"
TAG_BEST_TRIAL = "tunetrack.best_trial_id"
TAG_BEST_RUN = "tunetrack.best_run_id"
TAG_SEARCH_KEY = "tunetrack.search_key"
TAG_GIT_COMMIT = "tunetrack.git_commit"
TAG_VERSIONS = "tunetrack.versions"
TAG_OBJECTIVE = "tunetrack.objective"
TAG_CLASSES = "tunetrack.class_names"
TAG_DATA_FINGERPRINT = "tunetrack.data_fingerprint"
TAG_PARENT = "mlflow.parentRunId"

ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
ROLE_PROMOTION = "promotion"

METRIC_PARAMS_TOTAL = "params_total"
METRIC_PARAMS_TRAINABLE = "params_trainable"
METRIC_FLOPS = "flops_per_example"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_BEST_EPOCH = "best_epoch"
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class TrialStatus(StrEnum):
    """What became of one candidate. ``str`` so it can be written as an MLflow tag directly."""

    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    KILLED = "killed"

    def is_trained(self) -> bool:
        return self is TrialStatus.COMPLETED
