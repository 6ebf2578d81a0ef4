"""What a trial run is called and says in the MLflow UI, so its runs table reads without columns.

A finished trial is named ``t03 0.969 151k`` (trial id, objective, parameters),
``t01 rejected: params > 200k``, ``t05 failed: NaN loss``, ``t06 killed: stopped`` or
``t07 0.912 pruned ep3/10``; an early-stopped one adds ``ep4/10`` (stopped after epoch 4 of
10). The short reason is also the ``tunetrack.reason`` tag; the whole reason is the run's
description (``mlflow.note.content``), which MLflow shows whole.
"""

from __future__ import annotations

import re

from tunetrack.names import TrialStatus
from tunetrack.search.records import TrialRecord

SHORT_REASON = 40  # characters: what a runs-table cell shows without cutting


def short_count(n: float) -> str:
    """``151234`` -> ``151k``, ``2_400_000`` -> ``2.4M``, ``812`` -> ``812``."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f}".rstrip("0").rstrip(".") + unit if value < 10 else \
                f"{value:.0f}{unit}"
    return f"{n:.0f}"


def _number(text: str) -> float:
    return float(text.replace(",", ""))


_RULES: tuple[tuple[str, str], ...] = (
    (r"^[\d,]+ parameters > max_params ([\d,.]+\w*)", "params > {0}"),
    (r"^[\d,]+ FLOPs per example > max_flops ([\d,.]+\w*)", "FLOPs > {0}"),
    (r"^(.+?): output .* < min_feature_map (\d+)", "{0}: map < {1}"),
    (r"^(.+?): \(.*is smaller than 1", "{0}: window > input"),
    (r"^(.+?): \(.*is not a whole number", "{0}: stride misfit"),
    (r"loss became NaN", "NaN loss"),
    (r"batch size (\d+) ran out of memory and the retry at (\d+)", "OOM at batch {0} and {1}"),
    (r"batch size (\d+) ran out of memory and cannot be halved", "OOM at batch {0}"),
)


def _count_text(text: str) -> str:
    try:
        return short_count(_number(text))
    except ValueError:
        return text


def short_reason(reason: str) -> str:
    """One short phrase for a table cell: ``params > 200k``, ``conv 2: window > input``."""
    text = " ".join(reason.split())
    for pattern, template in _RULES:
        found = re.search(pattern, text)
        if found:
            parts = [_count_text(g) if template.startswith(("params", "FLOPs")) else g
                     for g in found.groups()]
            return template.format(*parts)[:SHORT_REASON]
    if len(text) <= SHORT_REASON:
        return text
    head = re.match(r"^(\w+(?:Error|Exception)):", text)
    if head:
        return head.group(1)[:SHORT_REASON]
    return text[:SHORT_REASON - 1] + "…"


def trial_label(trial_id: str) -> str:
    """``t03``: keras-tuner's ids ("3", "03") padded to two digits."""
    return f"t{trial_id.zfill(2)}" if trial_id.isdigit() else f"t{trial_id}"


def running_name(trial_id: str) -> str:
    return f"{trial_label(trial_id)} training"


def trial_run_name(record: TrialRecord, *, epochs_planned: int | None = None) -> str:
    """The finished trial's run name (see the module docstring)."""
    label = trial_label(record.trial_id)
    if record.status is TrialStatus.COMPLETED:
        score = f"{record.objective:.3f}" if record.objective is not None else "?"
        size = short_count(record.params_total) if record.params_total is not None else "?"
        stopped = (f" ep{record.epochs}/{epochs_planned}"
                   if epochs_planned and 0 < record.epochs < epochs_planned else "")
        return f"{label} {score} {size}{stopped}"
    if record.status is TrialStatus.PRUNED:
        score = f"{record.objective:.3f}" if record.objective is not None else "?"
        return f"{label} {score} pruned ep{record.epochs}" + (
            f"/{epochs_planned}" if epochs_planned else "")
    why = short_reason(record.reason or record.status.value)
    return f"{label} {record.status.value}: {why}"


def trial_description(record: TrialRecord, objective: str, *, best_epoch: int | None = None,
                      epochs_planned: int | None = None) -> str:
    """The run's description (markdown): the whole reason first, or what the trial scored."""
    if record.status is TrialStatus.COMPLETED:
        where = f" at epoch {best_epoch} of {record.epochs}" if best_epoch else ""
        stopped = (f"; early stopping ended it after {record.epochs} of {epochs_planned} epochs"
                   if epochs_planned and 0 < record.epochs < epochs_planned else "")
        params = f"{record.params_total:,}" if record.params_total is not None else "?"
        return (f"Trial {record.trial_id}: best {objective} {record.objective:.4f}{where}"
                f"{stopped}; {params} parameters; {record.seconds:.1f} s.")
    lines = [record.reason or record.status.value, ""]
    if record.status is TrialStatus.REJECTED:
        lines.append(f"Trial {record.trial_id} was planned but never trained (rejected "
                     "candidates do not count towards max_trials).")
    elif record.status is TrialStatus.PRUNED:
        lines.append(f"Trial {record.trial_id} scored {objective} {record.objective:.4f} in "
                     f"{record.epochs} epochs before the search's pruner stopped it; its "
                     "curves and model are kept.")
    elif record.status is TrialStatus.FAILED:
        lines.append(f"Trial {record.trial_id} failed; the traceback is the artifact "
                     "`traceback.txt`.")
    return "\n".join(lines)


__all__ = ["short_count", "short_reason", "trial_description", "trial_label", "trial_run_name",
           "running_name"]
