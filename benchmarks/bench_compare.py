"""Compare at scale: ``tunetrack compare --top 20`` on a search of 1,000 trial runs.

The store is filled with ``MlflowClient`` directly (no training): one search parent, trial runs
with the tags, params and metrics tunetrack writes. The figure is ``compare.compare`` in-process
against the equivalent ``mlflow.search_runs`` (every trial of that parent, as a DataFrame);
the whole CLI subprocess is reported too, beside the cost of ``import mlflow`` alone.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from typing import Any

from benchmarks import BIN, Row, call, check_size, median, spread, store_uri, time_command, tmp_root

NAME = "compare"
EXPERIMENT = "bench-compare"
GOAL_S = 3.0
TOP = 20
# trial runs, timing repeats
SIZES = {"smoke": (20, 1), "quick": (1000, 3), "full": (1000, 5)}


def fill(payload: dict[str, Any]) -> dict[str, Any]:
    """A search parent and ``n`` trial runs shaped like tunetrack's, written through the client."""
    import os

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from tunetrack import names

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.create_experiment(EXPERIMENT)
    parent = client.create_run(exp, run_name="bench-search", tags={
        names.TAG_ROLE: names.ROLE_SEARCH, names.TAG_OBJECTIVE: "val_accuracy"})
    pid = parent.info.run_id
    client.log_batch(pid, params=[Param("objective", "val_accuracy"), Param("direction", "max"),
                                  Param("tuner", "random"), Param("family", "cnn")])
    rng = random.Random(0)
    t0 = time.perf_counter()
    for i in range(payload["n"]):
        blocks = rng.randint(1, 3)
        hps = {"optimizer": rng.choice(["adam", "rmsprop", "sgd"]),
               "learning_rate": 10 ** rng.uniform(-4, -1), "batch_size": rng.choice([32, 64]),
               "blocks": blocks, "dense": rng.randint(0, 2)}
        hps |= {f"blocks.{b}.filters": rng.choice([8, 16, 32]) for b in range(1, blocks + 1)}
        rejected = rng.random() < 0.1
        status = "rejected" if rejected else "completed"
        run = client.create_run(exp, run_name=f"trial-{i:04d}", tags={
            names.TAG_PARENT: pid, names.TAG_ROLE: names.ROLE_TRIAL,
            names.TAG_TRIAL_ID: f"{i:04d}", names.TAG_TRIAL_STATUS: status})
        now = int(time.time() * 1000)
        metrics = [] if rejected else [
            Metric(k, v, now, 0) for k, v in {
                "best_val_accuracy": rng.uniform(0.5, 0.99), names.METRIC_PARAMS_TOTAL:
                rng.randint(1000, 200_000), "epochs_trained": 15,
                names.METRIC_TRAIN_SECONDS: rng.uniform(5, 30)}.items()]
        metrics += [Metric("val_accuracy", rng.random(), now, s) for s in range(15)
                    if not rejected]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, str(v)) for k, v in hps.items()],
                         tags=[RunTag(names.TAG_REASON, "2,000,000 FLOPs > max_flops")]
                         if rejected else [])
        client.set_terminated(run.info.run_id)
    return {"parent": pid, "experiment_id": exp, "seconds": time.perf_counter() - t0}


def measure(payload: dict[str, Any]) -> dict[str, Any]:
    """In-process: ``compare.compare`` and the equivalent ``mlflow.search_runs``, warm imports."""
    import mlflow

    from tunetrack import names
    from tunetrack.tracking import compare

    mlflow.set_tracking_uri(payload["uri"])
    query = f"tags.`{names.TAG_PARENT}` = '{payload['parent']}'"
    ours, theirs, top = [], [], []
    rows = 0
    for _ in range(payload["repeats"]):
        seconds, text = _timed(lambda: compare.compare(experiment=EXPERIMENT, top=TOP))
        ours.append(seconds)
        seconds, df = _timed(lambda: mlflow.search_runs(
            [payload["experiment_id"]], query, max_results=100_000))
        theirs.append(seconds)
        rows = len(df)
        seconds, _ = _timed(lambda: mlflow.search_runs(
            [payload["experiment_id"]], query, max_results=TOP,
            order_by=["metrics.best_val_accuracy DESC"]))
        top.append(seconds)
    return {"compare": ours, "search_runs": theirs, "search_runs_top": top, "rows": rows,
            "lines": len(text.splitlines())}


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def run(size: str) -> list[Row]:
    check_size(size)
    n, repeats = SIZES[size]
    root = tmp_root(NAME)
    uri = store_uri(root / "store")
    env = {"MLFLOW_TRACKING_URI": uri}
    smoke = size == "smoke"
    try:
        filled = call(f"{__name__}:fill", {"n": n}, folder=root, env=env, in_process=smoke)
        got = call(f"{__name__}:measure", {"uri": uri, "repeats": repeats, **filled},
                   folder=root, env=env, in_process=smoke)
        cli = time_command([str(BIN / "tunetrack"), "compare", "--experiment", EXPERIMENT,
                            "--top", str(TOP)], repeats, cwd=root, env=env)
        imp = time_command([sys.executable, "-c", "import mlflow"], repeats, cwd=root, env=env)
        ours, theirs = median(got["compare"]), median(got["search_runs"])
        fill_note = f"{n:,} trial runs filled in {filled['seconds']:.1f} s"
        return [
            Row(NAME, f"compare.compare(top={TOP}) in-process", ours, "s", theirs,
                f"mlflow.search_runs, all {got['rows']:,} trials", f"<= {GOAL_S} s",
                ours <= GOAL_S, f"median of {repeats}: {spread(got['compare'])}; {fill_note}; "
                f"search_runs top-{TOP} ordered in the store: "
                f"{median(got['search_runs_top']):.3f} s"),
            Row(NAME, f"tunetrack compare --top {TOP} (CLI subprocess)", median(cli), "s",
                median(imp), "python -c 'import mlflow'", f"<= {GOAL_S} s",
                median(cli) <= GOAL_S, f"median of {repeats}: {spread(cli)}; the baseline is "
                "MLflow's import alone, which every compare pays"),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
