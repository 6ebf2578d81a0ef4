"""Seed repeats read back: is the leader better, or luckier?

A candidate trained N times (``--repeats N``) keeps its objective over the repeats: mean,
standard deviation and a 95 % confidence interval of the mean (Student's t, N - 1 degrees of
freedom). ``compare`` ranks by the mean and shows them; ``compare --significance`` and
``promote --require-significant`` test #1 against #2 with Welch's t-test (two-sided, unequal
variances: ``scipy.stats.ttest_ind(equal_var=False)``). The lead *exceeds seed noise* when
p < 0.05 and #1's mean is the better one. Searches without repeats read exactly as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunetrack import names
from tunetrack.errors import PromotionRefused

if TYPE_CHECKING:
    import pandas as pd

CONFIDENCE = 0.95
ALPHA = 0.05
TEST = "Welch's t-test (two-sided, unequal variances)"
# compare's columns for a search with repeats, after the objective (its mean)
COLUMNS = ("±", "ci95_low", "ci95_high", "repeats")


def bounds(metric: str | None) -> tuple[float, float]:
    """The values ``metric`` can take: [0, 1] for accuracies, F1 and recalls, [0, inf) for
    losses, anything for a metric not known."""
    name = (metric or "").lower()
    if any(word in name for word in ("accuracy", "f1", "recall")):
        return 0.0, 1.0
    if "loss" in name:
        return 0.0, math.inf
    return -math.inf, math.inf


@dataclass(frozen=True)
class RepeatStats:
    """One candidate's objective over its repeats; ``limits``: the values it can take."""

    values: tuple[float, ...]
    limits: tuple[float, float] = (-math.inf, math.inf)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (N - 1); NaN for fewer than two repeats."""
        if self.n < 2:
            return math.nan
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def ci(self) -> tuple[float, float]:
        """The 95 % confidence interval of the mean (Student's t), within :attr:`limits` (with
        two repeats an accuracy's interval would otherwise pass 1); NaN for one repeat."""
        if self.n < 2:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + CONFIDENCE / 2, self.n - 1) * self.std / math.sqrt(self.n)
        low, high = self.limits
        return max(self.mean - half, low), min(self.mean + half, high)

    def metrics(self) -> dict[str, float]:
        """The candidate run's ``repeats/*`` metrics."""
        low, high = self.ci
        out = {names.METRIC_REPEATS_N: float(self.n), names.METRIC_REPEATS_MEAN: self.mean,
               names.METRIC_REPEATS_STD: self.std, names.METRIC_REPEATS_CI_LOW: low,
               names.METRIC_REPEATS_CI_HIGH: high}
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def text(self, digits: int = 4) -> str:
        low, high = self.ci
        if self.n < 2:
            return f"{self.mean:.{digits}f} (1 run)"
        return (f"{self.mean:.{digits}f} ± {self.std:.{digits}f} "
                f"(95% CI {low:.{digits}f}–{high:.{digits}f}, n={self.n})")


def summarize(values: Sequence[float], metric: str | None = None) -> RepeatStats:
    """The repeats' scores of ``metric`` (its name bounds the interval: :func:`bounds`)."""
    return RepeatStats(tuple(float(v) for v in values), bounds(metric))


def parse_scores(text: str | None) -> list[float] | None:
    """A candidate's ``tunetrack.repeat_scores`` tag (a JSON list), or None."""
    if not text:
        return None
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, list) or not values:
        return None
    return [float(v) for v in values]


@dataclass(frozen=True)
class Lead:
    """#1 against #2 of a ranking, by Welch's t-test on their repeats."""

    first: str
    second: str
    a: RepeatStats
    b: RepeatStats
    direction: str
    t: float
    p: float

    @property
    def margin(self) -> float:
        """How much better #1's mean is (positive when it leads)."""
        sign = 1.0 if self.direction == "max" else -1.0
        return sign * (self.a.mean - self.b.mean)

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p < ALPHA and self.margin > 0

    def text(self) -> str:
        head = (f"#1 {self.first} {self.a.text()} vs #2 {self.second} {self.b.text()}: "
                f"lead {self.margin:.4f}")
        if min(self.a.n, self.b.n) < 2:
            return (f"{head}; {TEST} needs at least 2 repeats of each, so the lead cannot be "
                    f"told from seed noise (search with --repeats N, N >= 2)")
        stats = f"{TEST}: t = {self.t:.2f}, p = {self.p:.3g}"
        if self.significant:
            return (f"{head}; {stats} < {ALPHA}: the lead exceeds seed noise "
                    f"({int(CONFIDENCE * 100)} % confidence)")
        return (f"{head}; {stats} >= {ALPHA}: the lead does NOT exceed seed noise; more "
                f"repeats, more validation data or a larger difference would be needed")


def welch(first: str, a: Sequence[float], second: str, b: Sequence[float],
          direction: str, metric: str | None = None) -> Lead:
    """Welch's t-test of #1 (``a``) against #2 (``b``) on ``metric``; ``p`` is NaN when it
    cannot be run."""
    sa, sb = summarize(a, metric), summarize(b, metric)
    t = p = math.nan
    if min(sa.n, sb.n) >= 2:
        if sa.std == 0 and sb.std == 0:  # no seed noise at all: any difference is real
            t, p = (math.inf, 0.0) if sa.mean != sb.mean else (0.0, 1.0)
        else:
            from scipy import stats

            result = stats.ttest_ind(list(a), list(b), equal_var=False)
            t, p = float(result.statistic), float(result.pvalue)
    return Lead(first, second, sa, sb, direction, t, p)


# -- compare --------------------------------------------------------------------------------
def add_columns(df: pd.DataFrame, runs: Sequence[Any], objective: str) -> pd.DataFrame:
    """``compare``'s columns of a search with repeats (:data:`COLUMNS`, after the objective);
    a search without repeats is returned unchanged. The scores go in ``df.attrs``."""
    parsed = {r.info.run_id: parse_scores(r.data.tags.get(names.TAG_REPEAT_SCORES))
              for r in runs}
    scores = {k: v for k, v in parsed.items() if v}
    if not scores:
        return df
    import pandas as pd

    stats = [summarize(scores[r], objective) if r in scores else None for r in df["run_id"]]
    at = list(df.columns).index(objective) + 1
    values = {"±": [s.std if s else None for s in stats],
              "ci95_low": [s.ci[0] if s else None for s in stats],
              "ci95_high": [s.ci[1] if s else None for s in stats]}
    for offset, (column, series) in enumerate(values.items()):
        df.insert(at + offset, column, pd.array(series, dtype="Float64").astype("float64"))
    df.insert(at + 3, "repeats", pd.array([s.n if s else None for s in stats], dtype="Int64"))
    df.attrs["repeat_scores"] = scores
    return df


def leaders(df: pd.DataFrame, objective: str, direction: str) -> Lead | None:
    """#1 and #2 of the completed candidates with repeats, by mean; None with fewer than two."""
    scores = df.attrs.get("repeat_scores", {})
    done = df[(df["status"] == names.TrialStatus.COMPLETED.value)
              & df["run_id"].isin(list(scores))]
    ranked = done.sort_values(objective, ascending=direction == "min", kind="stable")
    if len(ranked) < 2:
        return None
    first, second = ranked.iloc[0], ranked.iloc[1]
    return welch(f"trial {first['trial_id']}", scores[first["run_id"]],
                 f"trial {second['trial_id']}", scores[second["run_id"]], direction, objective)


def significance_text(df: pd.DataFrame, objective: str, direction: str) -> str:
    """``compare --significance``: the verdict on #1 against #2, in words."""
    lead = leaders(df, objective, direction)
    if lead is None:
        have = len(df.attrs.get("repeat_scores", {}))
        return (f"significance: needs two completed candidates trained with repeats "
                f"(tunetrack search --repeats N, N >= 2); this table has {have}")
    return f"significance of {objective} ({direction}): {lead.text()}"


def repeats_table(df: pd.DataFrame, objective: str, direction: str) -> pd.DataFrame:
    """The candidates with repeats, best mean first: mean, ±, interval, n and each score."""
    scores = df.attrs.get("repeat_scores", {})
    rows = df[df["run_id"].isin(list(scores))]
    rows = rows.sort_values(objective, ascending=direction == "min", kind="stable")
    table = rows[["trial_id", "status", objective, *COLUMNS, "run_id"]].copy()
    table = table.rename(columns={objective: f"{objective} (mean)"})
    table["scores"] = [" ".join(f"{v:.4f}" for v in scores[r]) for r in rows["run_id"]]
    return table.reset_index(drop=True)


# -- promote ----------------------------------------------------------------------------------
def repeat_scores(client: Any, run: Any, metric: str) -> list[float]:
    """``best_<metric>`` of each repeat run nested under a candidate's run."""
    runs = client.search_runs(
        [run.info.experiment_id],
        f"tags.`{names.TAG_PARENT}` = '{run.info.run_id}' and "
        f"tags.`{names.TAG_ROLE}` = '{names.ROLE_REPEAT}'", max_results=1000)
    runs = sorted(runs, key=lambda r: int(r.data.tags.get(names.TAG_REPEAT, "0") or 0))
    key = metric if metric.startswith("best_") else f"best_{metric}"
    values = [r.data.metrics[key] for r in runs if key in r.data.metrics]
    if not values and key in run.data.metrics:  # a candidate trained once
        values = [run.data.metrics[key]]
    return values


def require_significant(client: Any, ranked: Sequence[Any], metric: str) -> Lead:
    """``promote --require-significant``: :class:`PromotionRefused` (exit 1) unless the best
    candidate's lead over the second exceeds seed noise (Welch's t-test on their repeats)."""
    rule = "--require-significant"
    if len(ranked) < 2:
        raise PromotionRefused(f"{rule}: the search has {len(ranked)} completed candidate; "
                               f"a lead needs a runner-up to be tested against")
    direction = "min" if "loss" in metric else "max"
    one, two = ranked[0], ranked[1]
    label = lambda r: f"trial {r.data.tags.get(names.TAG_TRIAL_ID, r.info.run_id)}"  # noqa: E731
    lead = welch(label(one), repeat_scores(client, one, metric),
                 label(two), repeat_scores(client, two, metric), direction, metric)
    if not lead.significant:
        raise PromotionRefused(f"{rule}: {lead.text()}")
    return lead
