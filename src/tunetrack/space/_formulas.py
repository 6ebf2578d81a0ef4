"""The course's layer formulas: output sizes and parameter counts, one function each.

Shape rules: ``(N + 2·pad − P)/stride + 1`` must be a whole number ≥ 1. Keras's ``'valid'``
padding silently drops the leftover border; tunetrack rejects such a candidate instead.
``'same'`` padding gives ``ceil(N/stride)`` and is always possible.
"""

from __future__ import annotations

from tunetrack.errors import CandidateRejected

__all__ = [
    "batch_norm_params", "conv_output_size", "conv_params", "dense_params", "pool_output_size",
    "same_output_size", "valid_output_size",
]


def _num(value: float) -> str:
    """``2.33``, ``3.5``, ``5``: short enough for a one-line reason."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def conv_output_size(n: int, kernel: int, stride: int, pad: int = 0, *,
                     layer: str = "conv") -> int:
    """``(N + 2·pad − P)/stride + 1``; a fraction or a size below 1 makes the layer impossible."""
    out = (n + 2 * pad - kernel) / stride + 1
    formula = f"{layer}: ({n} + 2·{pad} − {kernel})/{stride} + 1 = {_num(out)}"
    if out < 1:
        raise CandidateRejected(f"{formula} is smaller than 1 (the window {kernel} does not "
                                f"fit in the input {n} + 2·{pad})")
    if (n + 2 * pad - kernel) % stride:
        raise CandidateRejected(f"{formula} is not a whole number")
    return int(out)


def valid_output_size(n: int, kernel: int, stride: int, *, layer: str = "conv") -> int:
    """Keras ``'valid'`` padding, held to the course rule (no silent cropping)."""
    return conv_output_size(n, kernel, stride, 0, layer=layer)


def pool_output_size(n: int, pool_size: int, pool_stride: int, *, layer: str = "pool") -> int:
    """Pooling with ``'valid'`` padding: the same rule as a convolution without padding."""
    return conv_output_size(n, pool_size, pool_stride, 0, layer=layer)


def same_output_size(n: int, stride: int) -> int:
    """Keras ``'same'`` padding: ``ceil(N/stride)``, whatever the kernel."""
    return -(-n // stride)


def conv_params(kernel: int, depth: int, filters: int, bias: bool = True) -> int:
    """``(P·P·d + 1)·K``: a P×P×d kernel and a bias per filter (``P·P·d·K`` without bias, as
    where batch norm follows and its β does the bias's work)."""
    return (kernel * kernel * depth + int(bias)) * filters


def dense_params(n: int, m: int) -> int:
    """``(n + 1)·m``: a weight per input and a bias per unit."""
    return (n + 1) * m


def batch_norm_params(channels: int) -> tuple[int, int]:
    """``(total, trainable)``: γ, β trained; the moving mean and variance are not."""
    return 4 * channels, 2 * channels
