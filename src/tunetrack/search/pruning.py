"""When to stop a trial early: the median rule and asynchronous successive halving (pure).

Both rules judge a trial by its objective per epoch (``{epoch: value}``, epochs from 1) against
the curves of the search's other trials, and follow Optuna's pruners so their behaviour is the
documented one:

- ``median`` (``optuna.pruners.MedianPruner``): at epoch ``e`` after ``warmup_epochs``, once
  ``min_trials`` trials ran to the end, stop when the trial's best value so far is worse than the
  median of those trials' values at epoch ``e``. Pruned trials do not count as run to the end.
- ``asha`` (``optuna.pruners.SuccessiveHalvingPruner``): rungs at epochs ``r * eta**k``
  (``r = min_epochs``, ``eta = reduction_factor``). At a rung, the trial's value joins every
  value recorded there by the other trials (those that reached the rung, still running, finished
  or pruned); it continues only if it is in the top ``1/eta`` of them. While fewer than ``eta``
  trials reached the rung, only the best so far continues (as Optuna does: a trial cannot be
  paused and promoted later).

The other trials' curves come from the MLflow store of the search (see
:mod:`tunetrack.search.live`), which every worker of a parallel search writes as each epoch
ends, so the rules hold across workers without any state kept by the oracle. Nothing here
imports keras, MLflow or numpy; ``tests/test_pruning.py`` checks the median rule against Optuna.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunetrack.space._config import PruningSection

Curve = Mapping[int, float]  # epoch (from 1) -> objective value


@dataclass(frozen=True)
class Verdict:
    """A decision to stop a trial after ``epoch``: which rule, and why in words."""

    kind: str
    epoch: int
    value: float
    threshold: float
    peers: int

    @property
    def reason(self) -> str:
        what = "median" if self.kind == "median" else "rung cut-off"
        return (f"pruned ({self.kind}) after epoch {self.epoch}: {self.value:.4f} is worse than "
                f"the {what} {self.threshold:.4f} of {self.peers} trials at that epoch")


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def _best(curve: Curve, direction: str) -> float:
    values = [v for v in curve.values() if not math.isnan(v)]
    if not values:
        return math.nan
    return max(values) if direction == "max" else min(values)


def median_verdict(curve: Curve, epoch: int, finished: Sequence[Curve], *, direction: str,
                   warmup_epochs: int, min_trials: int) -> Verdict | None:
    """Optuna's MedianPruner on epoch ``epoch`` of ``curve``; ``finished``: the curves of the
    trials that ran to the end (not pruned). None means go on."""
    if len(finished) < max(1, min_trials) or epoch <= warmup_epochs or epoch not in curve:
        return None
    best = _best({e: v for e, v in curve.items() if e <= epoch}, direction)
    at_epoch = [c[epoch] for c in finished if epoch in c and not math.isnan(c[epoch])]
    if math.isnan(best):
        return Verdict("median", epoch, best, math.nan, len(at_epoch))
    if not at_epoch:
        return None
    median = statistics.median(at_epoch)
    if _better(median, best, direction):
        return Verdict("median", epoch, best, median, len(at_epoch))
    return None


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The ASHA rungs up to ``max_epochs``: ``min_epochs * reduction_factor**k``."""
    rungs, epoch = [], min_epochs
    while epoch <= max_epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return rungs


def asha_verdict(curve: Curve, epoch: int, others: Sequence[Curve], *, direction: str,
                 min_epochs: int, reduction_factor: int) -> Verdict | None:
    """Successive halving at epoch ``epoch``: None unless it is a rung and the trial's value
    there is outside the top ``1/reduction_factor`` of the values the trials recorded there."""
    if epoch < min_epochs or epoch not in curve:
        return None
    rung, k = min_epochs, 0
    while rung < epoch:
        rung, k = rung * reduction_factor, k + 1
    if rung != epoch:
        return None
    value = curve[epoch]
    competing = [c[epoch] for c in others if epoch in c and not math.isnan(c[epoch])]
    if math.isnan(value):
        return Verdict("asha", epoch, value, math.nan, len(competing) + 1)
    competing.append(value)
    keep = max(len(competing) // reduction_factor, 1)  # the top 1/eta (at least the best)
    ranked = sorted(competing, reverse=direction == "max")
    cutoff = ranked[keep - 1]
    if _better(cutoff, value, direction):
        return Verdict("asha", epoch, value, cutoff, len(competing))
    return None


def verdict(config: PruningSection, curve: Curve, epoch: int, *, direction: str,
            finished: Sequence[Curve], others: Sequence[Curve]) -> Verdict | None:
    """The configured rule's decision after ``epoch``; ``finished`` feeds ``median``,
    ``others`` (every other trial that has a curve) feeds ``asha``."""
    if config.kind == "median":
        return median_verdict(curve, epoch, finished, direction=direction,
                              warmup_epochs=config.warmup_epochs, min_trials=config.min_trials)
    if config.kind == "asha":
        if epoch <= config.warmup_epochs:
            return None
        return asha_verdict(curve, epoch, others, direction=direction,
                            min_epochs=config.min_epochs,
                            reduction_factor=config.reduction_factor)
    return None


def needs_peers(config: PruningSection, epoch: int) -> bool:
    """Whether ``epoch`` is one where the rule reads the other trials (ASHA: only at rungs)."""
    if config.kind == "median":
        return epoch > config.warmup_epochs
    if config.kind == "asha":
        return epoch > config.warmup_epochs and epoch in rung_epochs(
            config.min_epochs, config.reduction_factor, epoch)
    return False


__all__ = ["Curve", "Verdict", "asha_verdict", "median_verdict", "needs_peers", "rung_epochs",
           "verdict"]
