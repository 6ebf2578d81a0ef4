"""What a search shows while it runs: trial i of N, its key values, its score, the best so far.

The search loop talks to a :class:`Reporter`; the CLI picks the rich console one or, with
``-q``, the quiet one. Library users can pass their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunetrack.names import TrialStatus
from tunetrack.search.records import SearchResult, TrialRecord, format_seconds


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def describe_objective(pipeline: Any) -> str:
    """``val_accuracy (max, inferred)``: the objective as the search log states it."""
    how = "stated" if getattr(pipeline, "direction_stated", False) else "inferred"
    return f"{pipeline.objective} ({pipeline.direction}, {how})"


class Reporter:
    """Does nothing; subclasses show what they like. Every hook is optional."""

    def search_started(self, *, pipeline: Any, space: Any, dataset: Any, total: int | None,
                       experiment: str, run_id: str) -> None: ...

    def trial_started(self, *, number: int, total: int | None, trial_id: str,
                      shown: dict[str, Any]) -> None: ...

    def epoch_ended(self, *, epoch: int, epochs: int, logs: dict[str, float]) -> None: ...

    def trial_ended(self, record: TrialRecord, *, best: TrialRecord | None,
                    elapsed: float) -> None: ...

    def search_ended(self, result: SearchResult) -> None: ...


class QuietReporter(Reporter):
    """Only the final summary (``-q``)."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.echo = echo

    def search_ended(self, result: SearchResult) -> None:
        for line in result.summary_lines():
            self.echo(line)


class ConsoleReporter(QuietReporter):
    """A line per trial and a live bar for the running trial's epochs (rich)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(highlight=False)
        super().__init__(self.console.print)
        self._header = ""
        self._progress: Any = None
        self._task: Any = None
        self._start = time.perf_counter()
        self._objective = "val_accuracy"

    def search_started(self, *, pipeline: Any, space: Any, dataset: Any, total: int | None,
                       experiment: str, run_id: str) -> None:
        self._start = time.perf_counter()
        self._objective = pipeline.objective
        sizes = dataset.summary().get("split_sizes", {})
        self.console.print(
            f"[bold]tunetrack search[/] {pipeline.name}: family [cyan]{space.family}[/], "
            f"tuner [cyan]{pipeline.tuner.kind}[/], {total or '?'} trials x "
            f"{pipeline.training.epochs} epochs, objective {describe_objective(pipeline)}")
        self.console.print(
            f"data {dataset.source}: {len(dataset.class_names)} classes, image "
            f"{'x'.join(map(str, dataset.image_shape))}, splits {sizes}")
        self.console.print(f"MLflow experiment '{experiment}', search run {run_id}")

    def trial_started(self, *, number: int, total: int | None, trial_id: str,
                      shown: dict[str, Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        values = " ".join(f"{k}={format_value(v)}" for k, v in shown.items())
        self._header = f"trial {number}/{total or '?'} (id {trial_id})"
        self.console.print(f"[bold]{self._header}[/] {values}", overflow="fold")
        self._progress = Progress(TextColumn("  epochs"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[logs]}"), console=self.console,
                                  transient=True)
        self._task = self._progress.add_task("epochs", total=None, logs="")
        self._progress.start()

    def epoch_ended(self, *, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        if self._progress is not None:
            shown = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in
                             ("loss", "val_loss", "val_accuracy"))
            self._progress.update(self._task, completed=epoch + 1, total=epochs, logs=shown)

    def trial_ended(self, record: TrialRecord, *, best: TrialRecord | None,
                    elapsed: float) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if record.status is TrialStatus.COMPLETED:
            outcome = (f"{self._objective} [green]{record.objective:.4f}[/] "
                       f"({record.epochs} epochs, {record.params_total:,} params, "
                       f"{record.seconds:.1f}s)")
        elif record.status is TrialStatus.REJECTED:
            outcome = f"[yellow]rejected[/]: {record.reason}"
        elif record.status is TrialStatus.PRUNED and (record.reason or "").startswith("pruned"):
            # the rule's own words: "pruned (median) after epoch 2: 0.8854 is worse than..."
            outcome = f"{self._objective} {record.objective:.4f} [yellow]{record.reason}[/]"
        elif record.status is TrialStatus.PRUNED:
            outcome = (f"{self._objective} {record.objective:.4f} [yellow]pruned[/] after "
                       f"epoch {record.epochs}: {record.reason}")
        else:
            outcome = f"[red]{record.status.value}[/]: {record.reason}"
        best_text = (f"best {best.objective:.4f} (trial {best.trial_id})" if best
                     else "best -")
        self.console.print(f"  {outcome} | {best_text} | elapsed {format_seconds(elapsed)}",
                           overflow="fold")
