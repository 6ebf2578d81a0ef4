"""``tunetrack plan``: a candidate's layers, shapes and parameters, without TensorFlow."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

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


DEFAULT_INPUT = "8,8,1"  # the bundled digits
DEFAULT_CLASSES = 10


def plan_command(space_file: str, assignments: tuple[str, ...], *, sample: int | None,
                 seed: int, input_shape: str | None, classes: int | None,
                 as_json: bool) -> tuple[str, bool]:
    """The text ``tunetrack plan`` prints, and whether every candidate was possible.

    The input shape and number of classes come from the flags, else from the space file's
    ``input_shape``/``classes`` (a preset's published input), else the digits' 8×8×1 and 10.
    The header says where they came from, which values ``--set`` pinned, and which searched
    values are at their defaults or sampled.
    """
    from tunetrack.space.language import load_space
    from tunetrack.space.plan import check_constraints, plan_candidate

    space = load_space(space_file)
    shape, shape_from = _input(input_shape, space.input_shape)
    classes_from = "--classes" if classes is not None else (
        "the space file" if space.classes is not None else "default")
    classes = classes or space.classes or DEFAULT_CLASSES
    overrides = parse_assignments(assignments)
    if sample:
        rng = random.Random(seed)
        candidates = [space.override(space.sample(rng), overrides) for _ in range(sample)]
    else:
        candidates = [space.override(space.defaults(), overrides)]
    header = [f"{space.path}: family {space.family}, input {'×'.join(map(str, shape))} "
              f"({shape_from}), {classes} classes ({classes_from})"]
    if overrides:
        header.append(f"pinned by --set: {_values(overrides)}")
    blocks, records, ok = ["\n".join(header)], [], True
    for i, candidate in enumerate(candidates, 1):
        title = f"candidate {i} of {len(candidates)}, sampled" if sample else \
            "candidate of the defaults"
        searched = {k: candidate[k] for k in space.searched()
                    if k in candidate and k not in overrides}
        title += f": {_values(searched)}"
        try:
            plan = plan_candidate(space.family, candidate, shape, classes)
            check_constraints(plan, space.constraints)
        except CandidateRejected as exc:
            ok = False
            blocks.append(f"{title}\nREJECTED ({exc.kind}): {exc.reason}")
            records.append({"candidate": candidate, "rejected": exc.reason, "kind": exc.kind})
            continue
        blocks.append(f"{title}\n{plan.table()}")
        records.append({"candidate": candidate, "plan": plan.to_dict()})
    if as_json:
        return json.dumps(records if sample else records[0], indent=2, default=str), ok
    return "\n\n".join(blocks), ok


def _input(flag: str | None, declared: tuple[int, int, int] | None
           ) -> tuple[tuple[int, int, int], str]:
    if flag is not None:
        return parse_shape(flag), "--input-shape"
    if declared is not None:
        return declared, "the space file"
    return parse_shape(DEFAULT_INPUT), "default"


def _values(values: Mapping[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items()) or "(nothing searched)"
