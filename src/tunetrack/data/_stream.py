"""A split that is not held in memory: uint8 rows read (or decoded) a batch at a time.

:class:`StreamedImages` stands where a float32 array stands in a :class:`~tunetrack.data.
Dataset` (``len``, ``shape``, ``ndim``, ``dtype``, slicing, ``np.asarray``), but only the rows
asked for are read, and scaled to float32 ``[0, 1]`` then. :func:`keras_batches` feeds it to
``model.fit`` through a ``keras.utils.PyDataset``, which every Keras backend reads.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tunetrack.data._decode import decode
from tunetrack.errors import DataError

_PREADV = hasattr(os, "preadv")  # Linux, the BSDs, macOS 11+; elsewhere pread and a copy


def _read_into(fd: int, buffer: np.ndarray, offset: int) -> bool:
    """Fill the flat uint8 ``buffer`` from ``fd`` at ``offset``, straight into it where the
    OS has ``preadv`` (no bytes object, no second copy); False if the file ends first. Loops
    on short reads (Linux returns at most ~2 GiB a call)."""
    done, size = 0, len(buffer)
    while done < size:
        if _PREADV:
            got = os.preadv(fd, [buffer[done:].data], offset + done)
        else:
            data = os.pread(fd, size - done, offset + done)
            got = len(data)
            buffer[done:done + got] = np.frombuffer(data, dtype=np.uint8)
        if got <= 0:
            return False
        done += got
    return True


class DiskRows:
    """Fixed-size uint8 rows in a raw file, read with ``pread`` (no mapping: the pages read
    stay in the OS page cache, not in this process's resident memory)."""

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        self.path, self.shape = Path(path), shape
        self.row_bytes = int(np.prod(shape))
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), H, W, C); contiguous runs of sorted rows are read at once."""
        fd, n = self._descriptor(), self.row_bytes
        out = np.empty((len(rows), *self.shape), dtype=np.uint8)
        flat = out.reshape(len(rows), n)
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and rows[end] == rows[end - 1] + 1:
                end += 1
            if not _read_into(fd, flat[start:end].reshape(-1), int(rows[start]) * n):
                raise DataError(f"the decode cache {self.path} is shorter than expected: delete "
                                f"it and run again")
            start = end
        return out

    def __del__(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


class FileRows:
    """Rows decoded from the image files on every read (``data.cache: none``), on two threads
    (Pillow's decoding releases the GIL: a 128x128 JPEG takes ~1 ms)."""

    THREADS = 2

    def __init__(self, paths: list[Path], shape: tuple[int, int, int], mode: str) -> None:
        self.paths, self.shape, self.mode = paths, shape, mode
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _decode_into(self, out: np.ndarray, rows: np.ndarray, part: int) -> None:
        for i in range(part, len(rows), self.THREADS):
            path = self.paths[int(rows[i])]
            try:
                out[i] = decode(path, self.shape[:2], self.mode)
            except Exception as exc:  # noqa: BLE001 - checked at load: the file changed since
                raise DataError(f"cannot decode image: {path}: {type(exc).__name__}: {exc} (it "
                                f"decoded when the search loaded its data; was it changed?)"
                                ) from exc

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape), dtype=np.uint8)
        if len(rows) < 2 * self.THREADS:  # an image or two: no hand-off
            for part in range(self.THREADS):
                self._decode_into(out, rows, part)
            return out
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.THREADS,
                                                thread_name_prefix="tunetrack-decode")
        for done in [self._pool.submit(self._decode_into, out, rows, part)
                     for part in range(self.THREADS)]:
            done.result()  # the first error, raised here
        return out


class StreamedImages:
    """One split's images: float32 NHWC in ``[0, 1]``, read only when indexed."""

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(self, rows: DiskRows | FileRows, index: np.ndarray) -> None:
        self.rows, self.index = rows, np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.index), *self.rows.shape)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def take_uint8(self, positions: np.ndarray) -> np.ndarray:
        """uint8 rows at ``positions`` of this split, in that order."""
        rows = self.index[np.asarray(positions, dtype=np.int64)]
        if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
            return self.rows.read(rows)  # sorted (a batch, a slice): no reordering
        order = np.argsort(rows, kind="stable")
        data = self.rows.read(rows[order])
        out = np.empty_like(data)
        out[order] = data
        return out

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 ``[0, 1]`` rows at ``positions``: bit for bit what the in-memory path holds
        (``astype(float32) / 255``), scaled in place: one float32 buffer a batch, not two."""
        out = self.take_uint8(positions).astype(np.float32)
        out /= np.float32(255.0)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take(np.asarray([key]))[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(np.arange(len(self))[np.asarray(key)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole split in memory (feature families, small evaluation sets)."""
        whole = self.take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"StreamedImages(shape={self.shape}, from={type(self.rows).__name__})"


def is_streamed(x: Any) -> bool:
    return isinstance(x, StreamedImages)


def keras_batches(x: StreamedImages, y: np.ndarray, batch_size: int, *, shuffle: bool,
                  seed: int = 0) -> Any:
    """A ``keras.utils.PyDataset`` of (float32 images, labels) batches, ``per_epoch`` of them
    an epoch. With ``shuffle`` (training) it is endless: batch ``i`` is batch ``i % per_epoch``
    of epoch ``i // per_epoch``, each epoch in its own seeded order, and ``model.fit`` takes it
    with ``steps_per_epoch=per_epoch`` (see :func:`fit_data`). Without (validation), the same
    ``per_epoch`` batches in order, every epoch.

    Endless so that Keras keeps one training iterator for the whole fit: with
    ``steps_per_epoch`` set its epoch iterator goes on reading the same one, where a finite
    dataset has it make a new one at every epoch. Under TensorFlow each new iterator of the
    ``from_generator`` dataset Keras builds cost ~15-20 ms (measured), about 10 % of a small
    folder's epoch; dropping the endless one when ``fit`` returns costs ~0.06-0.12 s once
    (its prefetch is mid-batch), so from the fifth epoch on a fit gains. An epoch's order
    depends on its number alone, not on when Keras calls ``on_epoch_end``: TensorFlow's
    prefetch reads the next epoch's first batches before this one ends. Validation stays
    finite: ``evaluate`` drops its iterator at every call whatever the dataset, and dropping an
    endless one mid-prefetch cost ~0.2 s (measured).

    One worker, no Keras enqueuer (its 0.1 s queue drain at every epoch's end, measured: 0.76x
    the in-memory path with 2 workers): under TensorFlow the batches come ahead of the step
    from the prefetch Keras puts on a one-worker PyDataset; under jax the step is dispatched
    asynchronously, so the next batch is read while it runs. Rows decoded from the image files
    (``data.cache: none``) are decoded on two threads within each batch (``FileRows``)."""
    import keras

    n, size = len(x), max(1, int(batch_size))
    labels = np.asarray(y)

    class Batches(keras.utils.PyDataset):
        per_epoch = math.ceil(n / size)

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
            self._orders: dict[int, np.ndarray] = {}

        @property
        def num_batches(self) -> int | None:
            return None if shuffle else self.per_epoch  # endless: fit reads per_epoch an epoch

        def order(self, epoch: int) -> np.ndarray:
            """The positions of epoch ``epoch`` (from 0) in the order it reads them."""
            if not shuffle:
                return np.arange(n)
            if epoch not in self._orders:
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
            return self._orders[epoch]

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            epoch, b = divmod(int(i), self.per_epoch)
            positions = np.sort(self.order(epoch)[b * size:(b + 1) * size])
            return x.take(positions), labels[positions]

    return Batches()


def fit_data(x: Any, y: np.ndarray, x_val: Any, y_val: np.ndarray, batch_size: int,
             seed: int = 0) -> tuple[dict[str, Any], Any]:
    """``model.fit`` keyword arguments for training data and ``validation_data``: arrays as
    they are; a streamed split through :func:`keras_batches` (the training batches endless and
    shuffled, with ``steps_per_epoch``)."""
    if not is_streamed(x):
        return {"x": x, "y": y, "batch_size": batch_size}, (x_val, y_val)
    train = keras_batches(x, y, batch_size, shuffle=True, seed=seed)
    # shuffle=False: the batches come shuffled (Keras warns that it ignores True on them)
    kwargs: dict[str, Any] = {"x": train, "steps_per_epoch": train.per_epoch, "shuffle": False}
    if not is_streamed(x_val):
        return kwargs, (x_val, y_val)
    return kwargs, keras_batches(x_val, y_val, batch_size, shuffle=False)
