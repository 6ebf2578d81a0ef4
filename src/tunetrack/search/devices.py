"""Which GPUs a local worker of ``--workers N`` sees (``--gpus-per-worker K``).

Keras trains on every device the process can see, so a worker is pinned by its environment:
``CUDA_VISIBLE_DEVICES`` lists its own K GPUs. Workers take consecutive groups of K, round robin
when there are more workers than groups.
"""

from __future__ import annotations

from tunetrack.errors import ConfigError


def worker_gpus(gpus: list[str], index: int, per_worker: int | None) -> list[str] | None:
    """The GPUs of local worker ``index``; None: leave ``CUDA_VISIBLE_DEVICES`` as it is.

    ``per_worker`` None keeps the default (one GPU each when there are several, else all).
    """
    if per_worker is None:
        return [gpus[index % len(gpus)]] if len(gpus) > 1 else None
    if per_worker > len(gpus):
        raise ConfigError(f"each worker asks for {per_worker} GPU(s) but "
                          f"{len(gpus)} {'is' if len(gpus) == 1 else 'are'} visible"
                          f"{' (' + ','.join(gpus) + ')' if gpus else ''}; lower it, or list "
                          f"the GPUs in CUDA_VISIBLE_DEVICES", key="--gpus-per-worker")
    groups = len(gpus) // per_worker
    start = (index % groups) * per_worker
    return gpus[start:start + per_worker]
