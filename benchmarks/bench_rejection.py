"""Rejection: plan and check random CNN candidates at 32x32x3 without building a Keras model.

tunetrack rejects impossible or over-budget candidates by arithmetic before keras-tuner builds
anything. The figure is the time per candidate (sample + plan + constraints) in an interpreter
that never imports keras or TensorFlow (checked in ``sys.modules``); the baseline is what
finding out by building costs: ``families.build_model`` on the first candidates, per model.
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks import ROOT, Row, call, check_size, tmp_root

NAME = "rejection"
SPACE = ROOT / "search_spaces" / "cnn.yaml"
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
GOAL_MS = 5.0
# candidates planned, models built for the baseline
SIZES = {"smoke": (300, 1), "quick": (10_000, 10), "full": (10_000, 30)}
HEAVY = ("keras", "tensorflow", "keras_tuner", "jax", "torch")


def plan_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Sample, plan and check ``n`` candidates; report time, rejections and heavy imports."""
    import sys

    from tunetrack.errors import CandidateRejected
    from tunetrack.space.language import load_space
    from tunetrack.space.plan import check_constraints, plan_candidate

    space = load_space(SPACE)
    rng = random.Random(payload["seed"])
    kinds: dict[str, int] = {}
    t0 = time.perf_counter()
    for _ in range(payload["n"]):
        candidate = space.sample(rng)
        try:
            plan = plan_candidate(space.family, candidate, IMAGE_SHAPE, NUM_CLASSES)
            check_constraints(plan, space.constraints)
        except CandidateRejected as exc:
            kind = exc.kind if exc.kind != "constraint" else exc.reason.split()[-2]
            kinds[kind] = kinds.get(kind, 0) + 1
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rejected": kinds,
            "heavy": sorted(m for m in HEAVY if m in sys.modules)}


def build_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Build (uncompiled) Keras models for the first ``n`` candidates: the cost plan avoids."""
    import keras

    from tunetrack import models as families
    from tunetrack.space.language import load_space

    space = load_space(SPACE)
    rng = random.Random(payload["seed"])
    candidates = [space.sample(rng) for _ in range(payload["n"])]
    families.build_model(space.family, space.defaults(), IMAGE_SHAPE, NUM_CLASSES)  # warm-up
    built, failed = 0, 0
    t0 = time.perf_counter()
    for candidate in candidates:
        keras.backend.clear_session()
        try:
            families.build_model(space.family, candidate, IMAGE_SHAPE, NUM_CLASSES)
            built += 1
        except Exception:  # noqa: BLE001 - an impossible candidate fails at build: still a cost
            failed += 1
    return {"seconds": time.perf_counter() - t0, "built": built, "failed": failed}


def run(size: str) -> list[Row]:
    check_size(size)
    n, builds = SIZES[size]
    root = tmp_root(NAME)
    # always a fresh interpreter: the point is that this one never imports keras
    planned = call(f"{__name__}:plan_worker", {"n": n, "seed": 0}, folder=root)
    built = call(f"{__name__}:build_worker", {"n": builds, "seed": 0}, folder=root,
                 in_process=size == "smoke")
    per = 1000 * planned["seconds"] / n
    per_build = 1000 * built["seconds"] / builds
    rejected = sum(planned["rejected"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(planned["rejected"].items()))
    clean = not planned["heavy"]
    return [
        Row(NAME, "plan + check per candidate", per, "ms", per_build,
            f"build_model per candidate ({builds} built)", f"<= {GOAL_MS} ms, no keras import",
            per <= GOAL_MS and clean,
            f"{n:,} candidates of {SPACE.name} at {'x'.join(map(str, IMAGE_SHAPE))}: "
            f"{rejected:,} rejected ({kinds}); imported in that interpreter: "
            f"{', '.join(planned['heavy']) or 'no keras/tensorflow/keras_tuner'}"),
        Row(NAME, "candidates rejected", float(rejected), "count",
            note=f"of {n:,} ({100 * rejected / n:.1f}%)"),
    ]
