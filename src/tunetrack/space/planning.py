"""``tunetrack plan``: a candidate's layers, shapes and parameters, without TensorFlow."""

from __future__ import annotations

import json
import random

from tunetrack.errors import CandidateRejected, SpaceError


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise SpaceError(f"--input-shape must be H,W,C of positive integers, got {text!r}")
    height, width, channels = parts
    return height, width, channels


def parse_assignments(assignments: tuple[str, ...] | list[str]) -> dict[str, str]:
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpaceError(f"--set takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def plan_command(space_file: str, assignments: tuple[str, ...], *, sample: int | None,
                 seed: int, input_shape: str, classes: int, as_json: bool) -> tuple[str, bool]:
    """The text ``tunetrack plan`` prints, and whether every candidate was possible."""
    from tunetrack.space.language import load_space
    from tunetrack.space.plan import check_constraints, plan_candidate

    space = load_space(space_file)
    shape = parse_shape(input_shape)
    overrides = parse_assignments(assignments)
    if sample:
        rng = random.Random(seed)
        candidates = [space.override(space.sample(rng), overrides) for _ in range(sample)]
    else:
        candidates = [space.override(space.defaults(), overrides)]
    blocks, records, ok = [], [], True
    for i, candidate in enumerate(candidates, 1):
        title = f"candidate {i} of {len(candidates)}" if sample else "candidate (defaults)"
        searched = {k: candidate[k] for k in space.searched() if k in candidate}
        try:
            plan = plan_candidate(space.family, candidate, shape, classes)
            check_constraints(plan, space.constraints)
        except CandidateRejected as exc:
            ok = False
            blocks.append(f"{title}: {_values(searched)}\nREJECTED ({exc.kind}): {exc.reason}")
            records.append({"candidate": candidate, "rejected": exc.reason, "kind": exc.kind})
            continue
        blocks.append(f"{title}: {_values(searched)}\n{plan.table()}")
        records.append({"candidate": candidate, "plan": plan.to_dict()})
    if as_json:
        return json.dumps(records if sample else records[0], indent=2, default=str), ok
    return "\n\n".join(blocks), ok


def _values(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items()) or "(nothing searched)"
