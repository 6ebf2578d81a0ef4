"""Kept so that models registered before the package split (tunetrack 0.1, which pickled
``tunetrack.serving.ImageClassifierModel``) still load; new code imports ``tunetrack.registry``."""

from tunetrack.registry import ImageClassifierModel

__all__ = ["ImageClassifierModel"]
