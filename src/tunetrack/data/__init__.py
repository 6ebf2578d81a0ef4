"""Datasets for a search: sklearn digits, image folders, ``keras:`` datasets.

Every source becomes float32 NHWC arrays in ``[0, 1]`` with stratified, seeded train /
validation / test splits. The test split depends only on the data, ``test_split`` and ``seed``,
so it stays sealed across searches that change the validation split. A folder too large for
memory (``data.cache: disk | none``, or ``auto``) gives :class:`StreamedImages` splits, read a
batch at a time (:func:`fit_data` feeds them to ``model.fit``). Bad data raises
``DataError`` before any training starts. keras is imported only for ``keras:`` sources.

:class:`DataConfig` is the pipeline's ``data:`` section (defined in :mod:`tunetrack.space`,
re-exported here).
"""

from __future__ import annotations

from tunetrack.data._cache import DEFAULT_CACHE_DIR
from tunetrack.data._checks import min_images_per_class
from tunetrack.data._dataset import Dataset, DataWarning
from tunetrack.data._decode import FOLDER_IMAGE_SIZE, IMAGE_EXTENSIONS, load_images
from tunetrack.data._load import load_dataset
from tunetrack.data._preflight import SourceInfo, inspect_source
from tunetrack.data._sources import KERAS_DATASETS
from tunetrack.data._stream import StreamedImages, fit_data, is_streamed
from tunetrack.space import DataConfig

__all__ = [
    "DEFAULT_CACHE_DIR", "FOLDER_IMAGE_SIZE", "IMAGE_EXTENSIONS", "KERAS_DATASETS", "DataConfig",
    "DataWarning", "Dataset", "SourceInfo", "inspect_source", "load_dataset", "load_images",
    "min_images_per_class", "StreamedImages", "fit_data", "is_streamed",
]
