"""What a search produced: one :class:`TrialRecord` per trial and the :class:`SearchResult`.

A leaf of the search package: the trial loop, resume, progress and the CLI all read these, and
this module imports none of them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunetrack.names import RunStatus, TrialStatus
from tunetrack.space.pipeline import Pipeline

# Reported to the oracle beside a rejected candidate's score: the oracle extends its budget per
# rejection, which keeps the count right after a reload and on the chief of a parallel search.
REJECTED_METRIC = "tunetrack_rejected"
# keras-tuner's own Hyperband bookkeeping, logged as params of the trial runs.
HYPERBAND_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round",
                  "tuner/trial_id")


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


@dataclass
class TrialRecord:
    """What became of one trial, as the search summary and the tests see it."""

    trial_id: str
    status: TrialStatus
    candidate: dict[str, Any]
    run_id: str | None = None
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params_total: int | None = None
    reason: str | None = None
    seconds: float = 0.0
    epochs: int = 0


def best_of(trials: list[TrialRecord], direction: str) -> TrialRecord | None:
    """The completed trial with the best objective (``direction``: "max" or "min")."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED and t.objective is not None]
    if not done:
        return None
    sign = 1.0 if direction == "max" else -1.0
    return max(done, key=lambda t: sign * float(t.objective or 0.0))


def reason_kind(reason: str) -> str:
    """Group reasons for the summary: the numbers differ, the rule is the same."""
    return re.sub(r"[\d.,]+", "#", reason)


@dataclass
class SearchResult:
    """A finished (or stopped) search: its trials, how it ended and where MLflow holds it."""

    pipeline: Pipeline
    experiment_id: str
    parent_run_id: str
    trials: list[TrialRecord]
    elapsed: float
    status: RunStatus = RunStatus.FINISHED
    stop_reason: str | None = None
    searched: list[str] = field(default_factory=list)

    @property
    def objective(self) -> str:
        return self.pipeline.objective

    @property
    def direction(self) -> str:
        return self.pipeline.direction

    @property
    def best(self) -> TrialRecord | None:
        return best_of(self.trials, self.direction)

    def count(self, status: TrialStatus) -> int:
        return sum(t.status is status for t in self.trials)

    def reasons(self, status: TrialStatus, top: int = 3) -> list[tuple[str, int]]:
        examples: dict[str, str] = {}
        found: Counter[str] = Counter()
        for t in self.trials:
            if t.status is status and t.reason:
                kind = reason_kind(t.reason)
                examples.setdefault(kind, t.reason)
                found[kind] += 1
        return [(examples[kind], n) for kind, n in found.most_common(top)]

    def summary_lines(self) -> list[str]:
        lines = [f"search {self.status.lower()} in {format_seconds(self.elapsed)}: "
                 f"{self.count(TrialStatus.COMPLETED)} trained, "
                 f"{self.count(TrialStatus.REJECTED)} rejected, "
                 f"{self.count(TrialStatus.FAILED)} failed"
                 + (f", {n} pruned" if (n := self.count(TrialStatus.PRUNED)) else "")]
        for status in (TrialStatus.REJECTED, TrialStatus.FAILED):
            for reason, n in self.reasons(status):
                lines.append(f"  {status.value} x{n}, e.g. {reason}")
        if self.stop_reason:
            lines.append(f"  stopped early: {self.stop_reason}")
        best = self.best
        if best is not None:
            params = f"{best.params_total:,}" if best.params_total is not None else "?"
            lines.append(f"best trial {best.trial_id}: {self.objective} "
                         f"{best.objective:.4f}, {params} params (run {best.run_id})")
        lines.append(f"search run {self.parent_run_id} in experiment '{self.pipeline.experiment}'")
        return lines
