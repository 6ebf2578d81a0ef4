"""The failure map: which hyperparameter values failed, were rejected or pruned."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunetrack.tracking.failuremap import INACTIVE, failure_map, value_labels

from .conftest import write_pipeline


def _trial(status: str, **candidate):
    return SimpleNamespace(status=status, candidate=candidate)


def test_values_are_labelled_binned_and_inactive_last():
    labels, order = value_labels([8, 16, None, 8, "x"])
    assert labels == ["8", "16", INACTIVE, "8", "x"]
    assert order == ["8", "16", "x", INACTIVE]
    rates = [10 ** (-4 + i * 0.25) for i in range(13)]  # 1e-4 .. 1e-1, log-uniform
    labels, order = value_labels(rates)
    assert len(order) == 6 and order[0].startswith("0.0001–") and order[-1].endswith("–0.1")
    assert labels[0] == order[0] and labels[-1] == order[-1]
    assert sum(label == order[0] for label in labels) == 2  # log-spaced bins: even counts


def test_map_counts_each_status_per_value():
    trials = [_trial("completed", optimizer="adam", blocks=1),
              _trial("failed", optimizer="sgd", blocks=2),
              _trial("rejected", optimizer="sgd", blocks=3),
              _trial("pruned", optimizer="adam", blocks=2)]
    figure = failure_map(trials, ["optimizer", "blocks"])
    assert figure is not None
    (ax,) = figure.axes  # one axes: a band of rows per hyperparameter
    assert [t.get_text() for t in ax.get_yticklabels()] == ["adam", "sgd", "1", "2", "3"]
    bands = [t.get_text() for t in ax.texts]
    assert bands == ["optimizer", "blocks"]
    # per status one bar per row: completed, pruned, rejected, failed (drawing order)
    widths = [p.get_width() for p in ax.patches]
    assert widths == [1, 0, 1, 0, 0,  1, 0, 0, 1, 0,  0, 1, 0, 0, 1,  0, 1, 0, 1, 0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["completed", "pruned", "rejected", "failed"]
    figure.savefig(io.BytesIO(), format="png")
    assert failure_map([_trial("completed", optimizer="adam")], ["optimizer"]) is None


@pytest.mark.slow
def test_search_with_rejections_logs_the_failure_map(store, workdir: Path):
    from PIL import Image

    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    from .test_search_outcomes import REJECTING_SPACE

    result = run_search(load_pipeline(write_pipeline(workdir, space=REJECTING_SPACE, trials=2,
                                                     epochs=1)))
    assert "rejected" in {t.status.value for t in result.trials}
    path = store.download_artifacts(result.parent_run_id, "plots/failure_map.png", str(workdir))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.height > 200
