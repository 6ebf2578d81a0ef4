"""The decode cache of image folders: decoding is the slow part of loading a folder.

Keyed by everything that changes the decoded arrays, written atomically, and never trusted
when unreadable (a broken file is decoded again).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tunetrack.data._dataset import DataWarning
from tunetrack.space import DataConfig

DEFAULT_CACHE_DIR = Path(".tunetrack") / "cache"
_CACHE_VERSION = 1

Cached = tuple[np.ndarray, np.ndarray, list[str], list[str]]  # x, y, bad files, their reasons


def cache_file(cfg: DataConfig, root: Path, paths: list[Path], size: tuple[int, int],
               mode: str) -> Path | None:
    """Keyed by relative paths, file sizes and mtimes, image size and mode; None: no cache."""
    if cfg.cache_dir is None:
        base = Path.cwd() / DEFAULT_CACHE_DIR
    elif cfg.cache_dir is False or cfg.cache_dir == "":
        return None
    else:
        base = Path(cfg.cache_dir)
    h = hashlib.sha256(f"{_CACHE_VERSION}|{size}|{mode}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return base / f"folder-{h.hexdigest()[:40]}.npz"


def read_cache(path: Path | None) -> Cached | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"], z["bad"].tolist(), z["reasons"].tolist()
    except Exception:  # noqa: BLE001 - a broken cache is rebuilt, never trusted
        return None


def write_cache(path: Path | None, x: np.ndarray, y: np.ndarray, bad: list[str],
                reasons: list[str]) -> None:
    """Atomic write (temp file + rename) so a concurrent search never reads half a cache."""
    if path is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y, bad=np.asarray(bad, dtype=str),
                     reasons=np.asarray(reasons, dtype=str))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        warnings.warn(f"could not write the decode cache {path}: {exc}", DataWarning,
                      stacklevel=4)
