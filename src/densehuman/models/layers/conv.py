"""Convolutions as detectron2 builds them: an optional norm and ReLU after the convolution, and its MSRA init."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NormName = Literal["", "GN"]


def msra_fill(module: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """detectron2's ``c2_msra_fill``: kaiming-normal weight (fan_out, ReLU gain), zero bias."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def norm_layer(norm: NormName, channels: int) -> nn.Module | None:
    """None for ``""``; ``GroupNorm(32)`` for ``"GN"`` (detectron2's), fewer groups for narrow layers (a width below
    32 or not divisible by it: the largest divisor up to 32)."""
    if norm == "":
        return None
    if norm == "GN":
        groups = 32 if channels % 32 == 0 else max(g for g in range(1, 33) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be '' or 'GN', got {norm!r}")


class Conv2dNorm(nn.Conv2d):
    """A convolution, then an optional norm layer, then an optional ReLU (detectron2's ``layers.Conv2d``).

    Parameters are named as detectron2's: ``weight``, ``bias`` (only without norm) and ``norm.weight``,
    ``norm.bias``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        norm: NormName = "",
        relu: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=norm == "")
        self.norm = norm_layer(norm, out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x, inplace=True) if self.relu else x
