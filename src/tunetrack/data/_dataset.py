"""What a loaded source becomes: split arrays, class names and the fingerprint of the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# np.ndarray, or a StreamedImages (data._stream) for a folder too large for memory: both give
# float32 arrays when sliced. Any, so the code that slices either needs no cast.
Images = Any


class DataWarning(UserWarning):
    """Data was loaded, but not all of it (undecodable files skipped)."""


@dataclass
class Dataset:
    """Split arrays (float32 NHWC in [0, 1], int64 labels) and what identifies them.

    A folder streamed from disk (``data.cache``) has :class:`~tunetrack.data._stream.
    StreamedImages` splits instead of arrays: sliced like arrays, read a batch at a time."""

    x_train: Images
    y_train: np.ndarray
    x_val: Images
    y_val: np.ndarray
    x_test: Images
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int, int]
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for the search run, so a run says what it was trained on."""
        splits = {"train": self.y_train, "val": self.y_val, "test": self.y_test}
        counts = {k: dict(zip(self.class_names, np.bincount(y, minlength=self.num_classes)
                              .tolist(), strict=True)) for k, y in splits.items()}
        return {"source": self.source, "class_names": list(self.class_names),
                "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "split_sizes": {k: int(len(y)) for k, y in splits.items()},
                "class_counts": counts, "fingerprint": self.fingerprint,
                "skipped": len(self.skipped)}
