"""Atrous spatial pyramid pooling (DeepLabV3): parallel dilated convolutions and an image-pooling branch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ASPP(nn.Module):
    """DeepLabV3 atrous spatial pyramid pooling with GroupNorm(32) (detectron2's copy of torchvision's, whose
    projection has no norm): 1x1, three dilated 3x3 and an image-pooling branch, concatenated, 1x1 + ReLU."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int) -> None:
        super().__init__()
        if out_channels % 32:
            raise ValueError(f"ASPP uses GroupNorm(32): out_channels must be divisible by 32, got {out_channels}")
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.GroupNorm(32, out_channels), nn.ReLU()
            )
        ]
        for rate in atrous_rates:
            branches.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False),
                    nn.GroupNorm(32, out_channels),
                    nn.ReLU(),
                )
            )
        branches.append(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.GroupNorm(32, out_channels),
                nn.ReLU(),
            )
        )
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [conv(x) for conv in self.convs[:-1]]
        avg_pool, conv, norm, relu = self.convs[-1].children()
        pooled = conv(avg_pool(x))  # (N, C, 1, 1)
        # PyTorch's GroupNorm refuses a single value per group (one RoI, 32 channels); duplicating the value keeps
        # the group's mean and variance, so the result is unchanged
        single = pooled.shape[0] * pooled.shape[1] == 32
        pooled = norm(pooled.expand(-1, -1, 1, 2))[..., :1] if single else norm(pooled)
        outs.append(F.interpolate(relu(pooled), size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))
