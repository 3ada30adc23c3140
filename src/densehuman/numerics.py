"""How close two float32 computations of the same quantity should be, on any CPU.

Two correct implementations of a network (detectron2 and densehuman, the model as loaded and the one prepared for
inference, one CPU's vector width or oneDNN kernel and another's) do not round alike: a float32 dot product of
length ``L`` carries a rounding error of about ``eps * sqrt(L)`` times the magnitude of its terms (blocked and
pairwise summation behave like a random walk of roundings), and the errors of ``D`` stacked layers add in
quadrature. So agreement is checked with

    tolerance = factor * eps * sqrt(L * D) * scale

where ``scale`` is the magnitude of the compared tensor (its largest absolute value), ``L`` the longest reduction
of the computation and ``D`` its number of layers (``reduction_profile`` reads both off a module). A real mistake (a
wrong pixel mean, a half-pixel box shift, a swapped channel) moves results by orders of magnitude more.

Labels computed by an argmax can flip where two scores tie to within that tolerance; ``near_ties`` finds those
pixels, so label comparisons allow flips there and nowhere else. Where a computation is ill-conditioned beyond
this model (a normalization of a near-constant signal), ``float32_noise`` measures its real sensitivity: it
perturbs every layer's output by the rounding model above, and the spread it causes is the yardstick.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 2**-23
DEFAULT_FACTOR = 4.0  # margin over the random-walk estimate


def float32_tolerance(scale: float, reduction_length: int = 1, depth: int = 1, factor: float = DEFAULT_FACTOR) -> float:
    """Absolute tolerance between two float32 results of magnitude ``scale`` computed through ``depth`` layers whose
    longest reduction sums ``reduction_length`` products."""
    if reduction_length < 1 or depth < 1:
        raise ValueError(f"reduction_length and depth must be at least 1, got {reduction_length} and {depth}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite non-negative magnitude, got {scale}")
    return factor * FLOAT32_EPS * math.sqrt(reduction_length * depth) * scale


def resampling_tolerance(scale: float, size: int, factor: float = DEFAULT_FACTOR) -> float:
    """Absolute tolerance for a bilinear resampling of a map with values of magnitude ``scale`` whose source
    coordinates reach ``size`` (the larger of the input and output sides): those coordinates are computed in float32
    with errors of about ``eps * size``, which move the interpolation weights by as much and the result by that
    fraction of the difference between neighbours (at most ``2 * scale``)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite non-negative magnitude, got {scale}")
    return factor * FLOAT32_EPS * size * 2 * scale


@dataclass(frozen=True)
class ReductionProfile:
    """The longest reduction (fan-in of one output element) and the number of reducing layers of a module."""

    longest: int
    layers: int

    def tolerance(self, scale: float, factor: float = DEFAULT_FACTOR) -> float:
        return float32_tolerance(scale, self.longest, self.layers, factor)


def reduction_profile(module: nn.Module) -> ReductionProfile:
    """Fan-ins of every convolution (transposed included) and linear layer in ``module``: the longest one and how
    many there are (parallel branches counted too: an upper bound on the depth of any path)."""
    longest, layers = 1, 0
    for m in module.modules():
        if isinstance(m, nn.Linear):
            fan_in = m.in_features
        elif isinstance(m, nn.ConvTranspose2d):
            # Each output element sums over the input channels and the kernel taps that land on it.
            stride = math.prod(m.stride)
            fan_in = m.in_channels // m.groups * max(math.prod(m.kernel_size) // stride, 1)
        elif isinstance(m, nn.modules.conv._ConvNd):
            fan_in = m.in_channels // m.groups * math.prod(m.kernel_size)
        else:
            continue
        longest, layers = max(longest, fan_in), layers + 1
    return ReductionProfile(longest, max(layers, 1))


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_float32_close(
    actual: Any,
    expected: Any,
    reduction_length: int = 1,
    depth: int = 1,
    *,
    factor: float = DEFAULT_FACTOR,
    scale: float | None = None,
    extra: float = 0.0,
    what: str = "values",
) -> float:
    """Assert ``|actual - expected| <= float32_tolerance(scale, ...) + extra`` elementwise, ``scale`` defaulting to
    the largest ``|expected|`` and ``extra`` an absolute allowance for further steps (e.g. a
    ``resampling_tolerance``); returns the tolerance used. The message gives the worst element and the tolerance."""
    a, e = _as_array(actual), _as_array(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} differs from the expected {e.shape}")
    if a.size == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(e).all()):
        raise AssertionError(f"{what}: non-finite values")
    magnitude = float(np.abs(e).max()) if scale is None else float(scale)
    tol = float32_tolerance(magnitude, reduction_length, depth, factor) + extra
    diff = np.abs(a - e)
    worst = int(diff.argmax())
    if diff.flat[worst] > tol:
        where = np.unravel_index(worst, diff.shape)
        bad = int((diff > tol).sum())
        raise AssertionError(
            f"{what}: {bad} of {diff.size} elements differ by more than {tol:.3g} (float32 tolerance for magnitude "
            f"{magnitude:.3g}, reduction {reduction_length}, depth {depth}); worst at {tuple(int(i) for i in where)}: "
            f"{float(a.flat[worst])!r} vs {float(e.flat[worst])!r} (difference {float(diff.flat[worst]):.3g})"
        )
    return tol


def near_ties(scores: Any, labels: Any, tolerance: float) -> np.ndarray:
    """Where ``labels`` (...) could be the argmax of ``scores`` (C, ...) under rounding: the score of the given
    label is within ``tolerance`` of the top score. (C, H, W) scores and (H, W) labels give an (H, W) mask."""
    s = _as_array(scores)
    lab = np.asarray(labels, dtype=np.int64)
    if s.shape[1:] != lab.shape:
        raise ValueError(f"scores {s.shape} do not fit labels {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= s.shape[0]):
        raise ValueError(f"labels must index the {s.shape[0]} score channels")
    chosen = np.take_along_axis(s, lab[None], axis=0)[0]
    result: np.ndarray = s.max(axis=0) - chosen <= tolerance
    return result


@contextmanager
def float32_noise(module: nn.Module, seed: int = 0, factor: float = 1.0) -> Iterator[None]:
    """Inside the block, every layer of ``module`` that rounds in a way that matters gets float32-sized noise:

    - convolutions and linear layers multiply their output by ``1 + factor * eps * sqrt(fan_in) * N(0, 1)``, the
      rounding model of ``float32_tolerance``;
    - GroupNorm adds ``factor * eps * |x| * |gamma| / sigma * N(0, 1)``: kernels evaluate it as ``x * a + b`` with
      ``a = gamma / sigma``, so the rounding of ``x`` itself is scaled by ``1 / sigma``, which is huge where a group
      is nearly constant (a single value per group normalizes to ``beta`` exactly, but only up to that rounding).

    Running a model with and without it measures how far float32 rounding alone can move each output, whatever
    the kernels of this CPU do."""
    generator = torch.Generator().manual_seed(seed)

    def noise(like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, dtype=torch.float64).to(like.device)

    def perturb(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        fan_in = reduction_profile(layer).longest
        return (output.double() * (1 + factor * FLOAT32_EPS * math.sqrt(fan_in) * noise(output))).to(output.dtype)

    def perturb_norm(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        assert isinstance(layer, nn.GroupNorm)
        x = inputs[0].double()
        groups = x.reshape(x.shape[0], layer.num_groups, -1)
        sigma = (groups.var(dim=2, unbiased=False) + layer.eps).sqrt()  # (N, G)
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        scale = (1 / sigma).repeat_interleave(x.shape[1] // layer.num_groups, dim=1).reshape(shape)
        if layer.weight is not None:
            scale = scale * layer.weight.detach().double().abs().reshape(1, -1, *(1,) * (x.dim() - 2))
        jitter = factor * FLOAT32_EPS * x.abs() * scale * noise(output)
        return (output.double() + jitter).to(output.dtype)

    layers = (nn.Linear, nn.modules.conv._ConvNd)
    handles = [m.register_forward_hook(perturb) for m in module.modules() if isinstance(m, layers)]
    handles += [m.register_forward_hook(perturb_norm) for m in module.modules() if isinstance(m, nn.GroupNorm)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
