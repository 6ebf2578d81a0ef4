"""The plan's records and the planner that fills them, layer by layer, as a model is built.

Private to :mod:`tunetrack.space.plan`: the family functions there drive a :class:`Planner`,
which appends each :class:`LayerSpec` with its computed :class:`LayerPlan` in step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tunetrack.space._formulas import (
    batch_norm_params,
    conv_params,
    dense_params,
    pool_output_size,
    same_output_size,
    valid_output_size,
)
from tunetrack.space.catalog import FAMILIES, Key, element_name

__all__ = ["Candidate", "LayerPlan", "LayerSpec", "Plan", "Planner", "layer_label"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer to build: ``kind`` and ``config`` say what, ``inputs`` name the layers it reads."""

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class LayerPlan:
    """What one layer produces (per example, no batch axis) and costs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int = 0
    trainable: int = 0
    flops: int = 0


@dataclass
class Plan:
    """A candidate's layers in build order, with the specs the Keras builder consumes."""

    family: str
    input_shape: tuple[int, ...]
    layers: list[LayerPlan]
    num_classes: int
    specs: list[LayerSpec] = field(default_factory=list, repr=False)
    image_shape: tuple[int, ...] | None = None
    # the outputs of auxiliary classifiers (GoogLeNet): trained, then left out of the served
    # model; the main output is always the last spec
    aux_outputs: list[str] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable for layer in self.layers)

    @property
    def flops(self) -> int:
        """Multiply-adds per example of the conv and dense layers (the rest is negligible)."""
        return sum(layer.flops for layer in self.layers)

    def table(self) -> str:
        rows = [("layer", "kind", "output shape", "params")]
        rows += [(lp.name, lp.kind, "×".join(map(str, lp.output_shape)), f"{lp.params:,}")
                 for lp in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                 f"{r[3]:>{widths[3]}}" for r in rows]
        rule = "-" * len(lines[0])
        total, trainable = self.total_params, self.trainable_params
        return "\n".join([lines[0], rule, *lines[1:], rule,
                          f"total params:         {total:,}",
                          f"trainable params:     {trainable:,}",
                          f"non-trainable params: {total - trainable:,}",
                          f"FLOPs per example:    {self.flops:,} (multiply-adds)"])

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "input_shape": list(self.input_shape),
                "image_shape": list(self.image_shape) if self.image_shape else None,
                "num_classes": self.num_classes, "total_params": self.total_params,
                "trainable_params": self.trainable_params, "flops": self.flops,
                "layers": [{**asdict(lp), "output_shape": list(lp.output_shape)}
                           for lp in self.layers]}


# --- candidate access ---------------------------------------------------------------------

def layer_label(name: str) -> str:
    """``blocks.2.conv`` → ``blocks.2 conv``: how a reason names a layer."""
    head, _, tail = name.rpartition(".")
    return f"{head} {tail}" if head else name


class Candidate:
    """Reads a candidate, falling back to the catalog default of a key it lacks."""

    def __init__(self, family: str, candidate: Mapping[str, Any]) -> None:
        self.schema, self.values = FAMILIES[family], candidate

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        return self.schema.keys[key].default

    def count(self, group: str) -> int:
        if group not in self.schema.groups:
            return 0
        return int(self.values.get(group, self.schema.groups[group].count_default))

    def element(self, group: str, index: int, key: str) -> Any:
        name = element_name(group, index, key)
        if name in self.values:
            return self.values[name]
        spec: Key = self.schema.groups[group].keys[key]
        return self.get(spec.inherit) if spec.inherit else spec.default

    def network(self, key: str, default: Any) -> Any:
        """A NETWORK key (dropout, batch_norm, ...) or ``default`` where the family has none."""
        return self.get(key) if key in self.schema.keys else default


# --- the planner ----------------------------------------------------------------------------

class Planner:
    """Appends specs and their computed shapes in step; each method returns the new layer."""

    def __init__(self, cand: Candidate, num_classes: int = 0) -> None:
        self.cand, self.num_classes = cand, num_classes
        self.aux_outputs: list[str] = []
        self.width = float(cand.network("width", 1.0))
        self.bias = bool(cand.network("bias", True))
        self.specs: list[LayerSpec] = []
        self.layers: list[LayerPlan] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.last = ""

    def _add(self, spec: LayerSpec, shape: tuple[int, ...], params: int = 0,
             trainable: int | None = None, flops: int = 0) -> str:
        self.specs.append(spec)
        self.layers.append(LayerPlan(spec.name, spec.kind, shape, params,
                                     params if trainable is None else trainable, flops))
        self.shapes[spec.name] = shape
        self.last = spec.name
        return spec.name

    def input(self, shape: tuple[int, ...]) -> str:
        return self._add(LayerSpec("input", "input", (), {"shape": shape}), shape)

    def augment(self) -> None:
        """The active random-augmentation layers: shape unchanged, no parameters, no FLOPs
        counted (they run in training only)."""
        for key in ("translate", "rotate", "zoom", "flip"):
            value = self.cand.get(f"augment_{key}")
            if value in (None, 0, 0.0, "none"):
                continue
            spec = LayerSpec(f"augment.{key}", "augment", (self.last,),
                             {"op": key, "factor": value})
            self._add(spec, self.shapes[self.last])

    def _sides(self, src: str, name: str, size: Callable[[int, str], int]) -> tuple[int, int]:
        (h, w, _), label = self.shapes[src], layer_label(name)
        if h == w:
            side = size(h, label)
            return side, side
        return size(h, f"{label} (height)"), size(w, f"{label} (width)")

    def filters(self, n: int) -> int:
        """``n`` filters scaled by the ``width`` multiplier (at least one)."""
        return max(1, round(n * self.width)) if self.width != 1.0 else n

    def conv(self, name: str, filters: int, kernel: int, stride: int = 1,
             padding: str = "same", src: str | None = None) -> str:
        """A convolution; numeric ``padding`` (``'2'``) is a zero-padding layer of that many
        pixels per side, then a ``'valid'`` convolution held to the course rule."""
        src = src or self.last
        if padding not in ("same", "valid"):
            pad = int(padding)
            padding = "valid"
            if pad:
                h, w, c = self.shapes[src]
                src = self._add(LayerSpec(f"{name}_pad", "zero_pad", (src,), {"pad": pad}),
                                (h + 2 * pad, w + 2 * pad, c))
        depth = self.shapes[src][2]
        if padding == "same":
            h, w = self._sides(src, name, lambda n, _lbl: same_output_size(n, stride))
        else:
            h, w = self._sides(src, name, lambda n, lbl: valid_output_size(n, kernel, stride,
                                                                           layer=lbl))
        spec = LayerSpec(name, "conv", (src,), {"filters": filters, "kernel": kernel,
                                                "stride": stride, "padding": padding,
                                                "bias": self.bias})
        return self._add(spec, (h, w, filters), conv_params(kernel, depth, filters, self.bias),
                         flops=h * w * filters * kernel * kernel * depth)

    def pool(self, name: str, mode: str, size: int, stride: int, padding: str = "valid",
             src: str | None = None) -> str:
        src = src or self.last
        if padding == "same":
            h, w = self._sides(src, name, lambda n, _lbl: same_output_size(n, stride))
        else:
            h, w = self._sides(src, name, lambda n, lbl: pool_output_size(n, size, stride,
                                                                          layer=lbl))
        spec = LayerSpec(name, f"{mode}_pool", (src,), {"size": size, "stride": stride,
                                                        "padding": padding})
        return self._add(spec, (h, w, self.shapes[src][2]))

    def batch_norm(self, name: str, src: str | None = None) -> str:
        src = src or self.last
        shape = self.shapes[src]
        total, trainable = batch_norm_params(shape[-1])
        return self._add(LayerSpec(name, "batch_norm", (src,)), shape, total, trainable)

    def activation(self, name: str, activation: str, src: str | None = None) -> str:
        src = src or self.last
        config: dict[str, Any] = {"activation": activation}
        if activation == "leaky_relu":
            config["slope"] = float(self.cand.network("leaky_relu_slope", 0.1))
        return self._add(LayerSpec(name, "activation", (src,), config), self.shapes[src])

    def dropout(self, name: str) -> str | None:
        rate = float(self.cand.network("dropout", 0.0))
        if rate <= 0:
            return None
        return self._add(LayerSpec(name, "dropout", (self.last,), {"rate": rate}),
                         self.shapes[self.last])

    def flatten(self) -> str:
        shape = self.shapes[self.last]
        if len(shape) == 1:
            return self.last
        return self._add(LayerSpec("flatten", "flatten", (self.last,)), (math.prod(shape),))

    def features(self) -> str:
        """The last feature map as a vector: the ``head`` key's flatten or global average."""
        if self.cand.network("head", "flatten") == "global_avg" and len(
                self.shapes[self.last]) == 3:
            return self.global_avg_pool()
        return self.flatten()

    def global_avg_pool(self) -> str:
        shape = self.shapes[self.last]
        return self._add(LayerSpec("global_avg_pool", "global_avg_pool", (self.last,)),
                         (shape[-1],))

    def dense(self, name: str, units: int, activation: str | None = None) -> str:
        (n,) = self.shapes[self.last]
        spec = LayerSpec(name, "dense", (self.last,), {"units": units, "activation": activation})
        return self._add(spec, (units,), dense_params(n, units), flops=n * units)

    def add(self, name: str, a: str, b: str) -> str:
        return self._add(LayerSpec(name, "add", (a, b)), self.shapes[a])

    def aux_classifier(self, prefix: str, src: str, act: str) -> None:
        """GoogLeNet's auxiliary classifier on ``src`` (torchvision's ``InceptionAux``):
        4×4 adaptive average pool → 1×1 conv of 128 → flatten → dense 1024 → dropout 0.7 →
        softmax. The main path continues from ``src``."""
        h, w, c = self.shapes[src]
        pool = self._add(LayerSpec(f"{prefix}.pool", "adaptive_avg_pool", (src,), {"size": 4}),
                         (4, 4, c))
        self.conv_unit(prefix, "", 128, 1, 1, "same", act, src=pool)
        n = math.prod(self.shapes[self.last])
        self._add(LayerSpec(f"{prefix}.flatten", "flatten", (self.last,)), (n,))
        self._add(LayerSpec(f"{prefix}.fc", "dense", (self.last,),
                            {"units": 1024, "activation": act}),
                  (1024,), dense_params(n, 1024), flops=n * 1024)
        self._add(LayerSpec(f"{prefix}.dropout", "dropout", (self.last,), {"rate": 0.7}),
                  (1024,))
        out = self._add(LayerSpec(f"{prefix}.output", "dense", (self.last,),
                                  {"units": self.num_classes, "activation": "softmax"}),
                        (self.num_classes,), dense_params(1024, self.num_classes),
                        flops=1024 * self.num_classes)
        self.aux_outputs.append(out)
        self.last = src

    def concat(self, name: str, inputs: tuple[str, ...]) -> str:
        """Channel concatenation (an inception module's branches); the maps must agree."""
        sides = {self.shapes[i][:2] for i in inputs}
        if len(sides) > 1:  # pragma: no cover - every branch keeps the side ('same', stride 1)
            raise ValueError(f"{name}: branches of different sides {sorted(sides)}")
        h, w = self.shapes[inputs[0]][:2]
        channels = sum(self.shapes[i][2] for i in inputs)
        return self._add(LayerSpec(name, "concat", inputs), (h, w, channels))

    def conv_unit(self, prefix: str, suffix: str, filters: int, kernel: int, stride: int,
                  padding: str, activation: str | None, src: str | None = None) -> str:
        """conv → [batch norm] → [activation]: the unit every conv family repeats (``filters``
        before the width multiplier)."""
        self.conv(f"{prefix}.conv{suffix}", self.filters(filters), kernel, stride, padding, src)
        if self.cand.network("batch_norm", False):
            self.batch_norm(f"{prefix}.bn{suffix}")
        if activation:
            self.activation(f"{prefix}.act{suffix}", activation)
        return self.last

    def conv_block(self, group: str, index: int) -> str:
        """conv unit → [pooling]: a ``stem`` layer or a cnn block, from its element keys."""
        def key(k: str) -> Any:
            return self.cand.element(group, index, k)

        prefix = f"{group}.{index}"
        self.conv_unit(prefix, "", int(key("filters")), int(key("kernel_size")),
                       int(key("stride")), str(key("padding")), str(key("activation")))
        if key("pooling") != "none":
            self.pool(f"{prefix}.pool", str(key("pooling")), int(key("pool_size")),
                      int(key("pool_stride")), str(key("pool_padding")))
        return self.last

    def stem(self) -> str:
        """The family's ``stem`` layers (none by default in cnn and vgg)."""
        for i in range(1, self.cand.count("stem") + 1):
            self.conv_block("stem", i)
        return self.last

    def head(self, num_classes: int, output_activation: str | None) -> None:
        """Hidden dense layers (dropout → dense → [bn] → activation), then the output layer."""
        cand = self.cand
        for i in range(1, cand.count("dense") + 1):
            self.dropout(f"dense.{i}.dropout")
            self.dense(f"dense.{i}", int(cand.element("dense", i, "units")))
            if cand.network("batch_norm", False):
                self.batch_norm(f"dense.{i}.bn")
            self.activation(f"dense.{i}.act", str(cand.element("dense", i, "activation")))
        self.dropout("output.dropout")
        self.dense("output", num_classes, output_activation)
