"""Provenance recorded on every search: the git commit and the versions that produced it."""

from __future__ import annotations

import subprocess
from importlib import metadata

PACKAGES = ("tunetrack", "keras", "keras-tuner", "tensorflow", "mlflow", "numpy", "jax", "torch")


def git_commit(path: str = ".") -> str | None:
    """The commit of the working directory (with ``-dirty`` when it has changes), or None."""
    try:
        sha = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
