"""Class imbalance: ``training.class_weight`` and the validation macro-F1 every trial logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.imagefolders import make_image_folder
from tunetrack import names
from tunetrack.errors import DataError, PipelineError


def test_balanced_weights_follow_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    from tunetrack.search.imbalance import class_weights

    y = np.array([0] * 8 + [1] * 2 + [2] * 2)
    got = class_weights("balanced", y, ["a", "b", "c"])
    want = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert got == pytest.approx(dict(enumerate(want)))
    assert class_weights({"b": 3.0}, y, ["a", "b", "c"]) == {0: 1.0, 1: 3.0, 2: 1.0}
    assert class_weights(None, y, ["a", "b", "c"]) is None
    with pytest.raises(DataError, match=r"training.class_weight names 'z', which the data does "
                                        r"not have; its classes are 'a', 'b', 'c'"):
        class_weights({"z": 2.0}, y, ["a", "b", "c"])


def test_macro_f1_and_per_class_recall():
    from tunetrack.search.imbalance import scores

    got = scores(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), ["a", "b:x"])
    assert got["val_macro_f1"] == pytest.approx((6 / 7 + 0.0) / 2)
    assert got["val_recall_a"] == 1.0 and got["val_recall_b_x"] == 0.0
    assert names.OBJECTIVE_DIRECTIONS["val_macro_f1"] == "max"
    assert names.chance_score("val_macro_f1", 4) == 0.25



def test_the_in_graph_macro_f1_and_recalls_equal_scikit_learn():
    """The compiled metric (and the recalls read from its confusion matrix) score a batch
    exactly as scikit-learn does, absent classes included, across several updates."""
    import keras
    from sklearn.metrics import f1_score, recall_score

    from tunetrack.models._compile import MacroF1
    from tunetrack.search.imbalance import macro_f1_callback

    rng = np.random.default_rng(0)
    metric = MacroF1(4)
    y_true = np.array([0, 0, 1, 1, 1, 2, 0, 1])  # class 3: never true
    logits = rng.normal(size=(8, 4)).astype("float32")
    for part in (slice(0, 5), slice(5, 8)):
        metric.update_state(y_true[part], logits[part])
    y_pred = logits.argmax(axis=1)
    want = f1_score(y_true, y_pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert float(metric.result()) == pytest.approx(want)
    logs = {"val_macro_f1": float(metric.result()), "macro_f1": 0.0}
    macro_f1_callback(metric, ["a", "b", "c", "d"]).on_epoch_end(0, logs)
    recalls = recall_score(y_true, y_pred, labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert [logs[f"val_recall_{c}"] for c in "abcd"] == pytest.approx(list(recalls))
    assert "macro_f1" not in logs  # the training side is not counted
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(clone, MacroF1) and clone.num_classes == 4


def test_a_fit_scores_macro_f1_on_the_validation_split_only():
    """In a real fit the metric counts validation batches only: val_macro_f1 is scikit-learn's
    score of the final model's validation predictions, and no training-side key is logged."""
    import keras
    from sklearn.metrics import f1_score

    from tunetrack.models import compile_kwargs
    from tunetrack.search.imbalance import macro_f1_callback

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(90, 6)).astype("float32"), rng.integers(0, 3, size=90)
    x[:, 0] += y  # learnable, imperfectly
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    compiled = compile_kwargs("mlp", {"learning_rate": 0.05}, num_classes=3)
    model.compile(**compiled)
    metric = compiled["metrics"][-1]
    history = model.fit(x[:60], y[:60], validation_data=(x[60:], y[60:]), epochs=3,
                        batch_size=16, verbose=0,
                        callbacks=[macro_f1_callback(metric, ["a", "b", "c"])])
    assert "macro_f1" not in history.history
    predicted = model.predict(x[60:], verbose=0).argmax(axis=1)
    want = f1_score(y[60:], predicted, labels=[0, 1, 2], average="macro", zero_division=0)
    assert history.history["val_macro_f1"][-1] == pytest.approx(want, abs=1e-6)
    assert {"val_recall_a", "val_recall_b", "val_recall_c"} <= set(history.history)
    assert metric.counting  # evaluate() after the fit counts as usual


def _pipeline(folder: Path, data: Path, name: str, class_weight: str | None) -> Path:
    (folder / "space.yaml").write_text("family: linear\nlearning_rate: 1.0e-3\n"
                                       "batch_size: 32\noptimizer: sgd\n")
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
experiment: imbalance
space: space.yaml
objective: val_macro_f1
data: {{source: {data}, seed: 0, image_size: [8, 8]}}
tuner: {{kind: random, max_trials: 1, seed: 1}}
training: {{epochs: 2, patience: null{', class_weight: ' + class_weight if class_weight else ''}}}
""")
    return path


def test_pipeline_class_weight_is_checked(workdir: Path):
    from tunetrack.space.pipeline import load_pipeline

    data = workdir / "data"
    path = _pipeline(workdir, data, "p", "balanced")
    assert load_pipeline(path).training.class_weight == "balanced"
    path.write_text(path.read_text().replace("class_weight: balanced", "class_weight: {a: -1}"))
    with pytest.raises(PipelineError, match=r"class_weight.*must be 'balanced' or a mapping of "
                                            r"class name to a positive weight"):
        load_pipeline(path)
    path.write_text(path.read_text().replace("class_weight: {a: -1}", "class_weight: {a: 2}"))
    assert load_pipeline(path).training.class_weight == {"a": 2.0}
    assert load_pipeline(path).objective == "val_macro_f1"


@pytest.mark.slow
def test_balanced_weights_raise_macro_f1_on_an_imbalanced_folder(store, workdir: Path):
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline
    from tunetrack.tracking.compare import compare

    data = make_image_folder(workdir / "data", {"beach": 150, "desert": 10, "snow": 10},
                             sizes=((8, 8),), formats=("png",))
    f1 = {}
    for name, weight in (("plain", None), ("balanced", "balanced")):
        result = run_search(load_pipeline(_pipeline(workdir, data, name, weight)))
        experiment = store.get_experiment_by_name("imbalance").experiment_id
        trials = store.search_runs(
            [experiment], f"tags.`{names.TAG_PARENT}` = '{result.parent_run_id}'")
        assert len(trials) == 1
        run = trials[0]
        assert {"best_val_macro_f1", "best_val_recall_snow", "final_val_recall_beach"} <= set(
            run.data.metrics), sorted(run.data.metrics)
        curve = store.get_metric_history(run.info.run_id, "macro_f1/val")
        assert [m.step for m in curve] == [1, 2]
        f1[name] = run.data.metrics["best_val_macro_f1"]
        table = compare("imbalance", search=result.parent_run_id, fmt="csv")
        assert table.splitlines()[0].startswith("trial_id,status,val_macro_f1"), table
    print(f"validation macro-F1: {f1}")
    assert f1["balanced"] > f1["plain"] + 0.1, f1
