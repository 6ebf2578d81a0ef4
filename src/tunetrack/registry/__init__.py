"""From a finished search to a model people can use: promotion through the sealed test split,
the MLflow registry's ``champion`` alias, and the image-classifier pyfunc behind ``predict``
and ``serve``.

Importing this package imports MLflow (the pyfunc base class); the CLI imports it only inside
the commands that need it.
"""

from __future__ import annotations

from tunetrack.registry._classifier import (
    CLASSIFIER,
    IMAGE_COLUMN,
    KERAS_MODEL,
    PREPROCESSING_FILE,
    Classifier,
    EnsembleClassifier,
    Preprocessing,
)
from tunetrack.registry._decision import PromotionResult, promotion_history
from tunetrack.registry._evaluation import Evaluation, Scores, evaluate
from tunetrack.registry._pyfunc import (
    ImageClassifierModel,
    load_classifier,
    log_classifier,
    pip_requirements,
)
from tunetrack.registry.promote import CHALLENGER, CHAMPION, promote
from tunetrack.registry.serving import FORMATS, classifier_uri, predict, serve, serve_command

__all__ = ["CHALLENGER", "CHAMPION", "CLASSIFIER", "Classifier", "EnsembleClassifier",
           "Evaluation", "FORMATS", "IMAGE_COLUMN", "ImageClassifierModel", "KERAS_MODEL",
           "PREPROCESSING_FILE", "Preprocessing", "PromotionResult", "Scores",
           "classifier_uri", "evaluate", "load_classifier", "log_classifier",
           "pip_requirements", "predict", "promote", "promotion_history", "serve",
           "serve_command"]
