"""Image folders larger than memory (``data.cache: disk | none | auto``).

``disk`` decodes the folder once, a chunk at a time, into a raw uint8 file in the cache
directory (keyed like the in-memory cache), and the splits read their batches from it.
``none`` decodes every batch from the image files; the folder is still decoded once at load
(pixels thrown away) so that a bad image follows ``on_bad_image`` before any training, exactly
as with ``memory``. ``auto`` keeps the folder in memory when its float32 splits fit in half the
available RAM. Peak memory stays one chunk of images, whatever the folder's size; the data's
fingerprint is the one the in-memory path computes for the same images.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tunetrack.data._cache import DEFAULT_CACHE_DIR, cache_file
from tunetrack.data._decode import decode_all
from tunetrack.data._stream import DiskRows, FileRows
from tunetrack.space import DataConfig

CHUNK = 256  # images decoded at once
Hasher = Any  # hashlib object after the fingerprint's header


def available_ram() -> int:
    """Bytes of memory available to a new allocation (MemAvailable), 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def resolve_cache(cfg: DataConfig, count: int, shape: tuple[int, int, int]) -> str:
    """``memory``, ``disk`` or ``none`` for a folder of ``count`` images of ``shape``."""
    mode = getattr(cfg, "cache", "auto") or "auto"
    if mode != "auto":
        return str(mode)
    # the in-memory path holds the uint8 stack and the float32 splits at once: 5 bytes a value
    need = 5 * count * int(np.prod(shape))
    ram = available_ram()
    return "memory" if ram == 0 or need <= ram // 2 else "disk"


def _base(cfg: DataConfig) -> Path:
    if cfg.cache_dir is None:
        return Path.cwd() / DEFAULT_CACHE_DIR
    if cfg.cache_dir is False or cfg.cache_dir == "":
        return Path(tempfile.mkdtemp(prefix="tunetrack-stream-"))
    return Path(cfg.cache_dir)


def _chunks(paths: list[Path], size: tuple[int, int], mode: str
            ) -> Iterator[tuple[int, np.ndarray, list[str | None]]]:
    for start in range(0, len(paths), CHUNK):
        x, reasons = decode_all(paths[start:start + CHUNK], size, mode)
        yield start, x, reasons


def _hash_rows(head: Hasher, rows: Iterator[np.ndarray], count: int, row_bytes: int,
               y: np.ndarray) -> str:
    """The in-memory fingerprint (``_load._fingerprint`` over the uint8 stack and labels),
    fed row chunks instead of one array."""
    head.update((count * row_bytes).to_bytes(8, "little"))
    for chunk in rows:
        head.update(np.ascontiguousarray(chunk).tobytes())
    b = np.ascontiguousarray(y).tobytes()
    head.update(len(b).to_bytes(8, "little") + b)
    return str(head.hexdigest())


def _read_file(path: Path, row_bytes: int) -> Iterator[np.ndarray]:
    with open(path, "rb") as f:
        while block := f.read(row_bytes * CHUNK):
            yield np.frombuffer(block, dtype=np.uint8)


Streamed = tuple[DiskRows | FileRows, np.ndarray, list[tuple[str, str]], str]


def stream_folder(cfg: DataConfig, root: Path, paths: list[Path], labels: np.ndarray,
                  size: tuple[int, int], mode: str, how: str,
                  head: Callable[[], Hasher]) -> Streamed:
    """(rows, labels of the decodable images, skipped (relative path, reason), fingerprint).

    ``head()`` gives a fresh hash holding the fingerprint's header (the config's parts)."""
    shape = (size[0], size[1], 3 if mode == "rgb" else 1)
    row_bytes = int(np.prod(shape))
    if how == "none":
        return _checked_files(paths, labels, shape, mode, row_bytes, root, head)
    key = cache_file(cfg, root, paths, size, mode)
    base = _base(cfg) if key is None else key.parent
    stem = (key.stem if key is not None else "folder") + "-stream"
    data, meta_path = base / f"{stem}.u8", base / f"{stem}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if data.stat().st_size == meta["count"] * row_bytes:
            y = np.asarray(meta["labels"], dtype=np.int64)
            return (DiskRows(data, shape), y, [tuple(s) for s in meta["skipped"]],
                    meta["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or a broken one: decode again
    base.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=base, suffix=".u8.tmp")
    kept: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    try:
        with os.fdopen(fd, "wb") as f:
            for start, x, reasons in _chunks(paths, size, mode):
                f.write(np.ascontiguousarray(x).tobytes())
                good = np.asarray([r is None for r in reasons])
                kept.append(labels[start:start + len(reasons)][good])
                skipped += [(paths[start + i].relative_to(root).as_posix(), r)
                            for i, r in enumerate(reasons) if r is not None]
        y = np.concatenate(kept) if kept else labels[:0]
        fingerprint = _hash_rows(head(), _read_file(Path(tmp), row_bytes), len(y), row_bytes, y)
        os.replace(tmp, data)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    meta_tmp = meta_path.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps({"count": len(y), "labels": y.tolist(), "skipped": skipped,
                                    "fingerprint": fingerprint, "shape": list(shape)}))
    os.replace(meta_tmp, meta_path)
    return DiskRows(data, shape), y, skipped, fingerprint


def _checked_files(paths: list[Path], labels: np.ndarray, shape: tuple[int, int, int],
                   mode: str, row_bytes: int, root: Path, head: Callable[[], Hasher]
                   ) -> Streamed:
    """``none``: decode once to find the bad files and hash the pixels, keep only the paths."""
    hasher = head()
    hasher.update((len(paths) * row_bytes).to_bytes(8, "little"))  # right if none is bad
    good = np.ones(len(paths), dtype=bool)
    skipped: list[tuple[str, str]] = []
    for start, x, reasons in _chunks(paths, shape[:2], mode):
        hasher.update(np.ascontiguousarray(x).tobytes())
        for i, r in enumerate(reasons):
            if r is not None:
                good[start + i] = False
                skipped.append((paths[start + i].relative_to(root).as_posix(), r))
    y = labels[good]
    kept = [p for p, g in zip(paths, good, strict=True) if g]
    if skipped:  # the header counted the bad files: hash the good ones again
        chunks = (x for _, x, _ in _chunks(kept, shape[:2], mode))
        return FileRows(kept, shape, mode), y, skipped, _hash_rows(head(), chunks, len(y),
                                                                  row_bytes, y)
    b = np.ascontiguousarray(y).tobytes()
    hasher.update(len(b).to_bytes(8, "little") + b)
    return FileRows(kept, shape, mode), y, skipped, str(hasher.hexdigest())
