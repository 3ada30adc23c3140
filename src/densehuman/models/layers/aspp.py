"""Atrous spatial pyramid pooling (DeepLabV3): parallel dilated convolutions and an image-pooling branch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.layers.conv import NormName, norm_layer


class ASPP(nn.Module):
    """A 1x1 convolution, one dilated 3x3 convolution per rate and an image-pooling branch (global average pool,
    1x1 convolution, bilinear broadcast back), each ``out_channels`` wide with ``norm`` and ReLU, concatenated and
    projected by a 1x1 convolution + ReLU to ``project_channels`` (default ``out_channels``).

    ``norm="GN"`` with a bias-free projection is detectron2's DensePose copy of torchvision's block (its parameter
    names: ``convs.<k>.<layer>``, ``project.0``); ``norm=""`` with biases everywhere is Parsing R-CNN's GCE part
    (``rcnn/modeling/parsing_rcnn/heads/gce_heads.py``: rates 6, 12, 18, no norm).
    """

    def __init__(
        self,
        in_channels: int,
        atrous_rates: Sequence[int],
        out_channels: int,
        norm: NormName = "GN",
        project_channels: int | None = None,
        project_bias: bool = False,
    ) -> None:
        super().__init__()
        bias = norm == ""

        def block(*layers: nn.Module) -> nn.Sequential:
            norm_module = norm_layer(norm, out_channels)
            return nn.Sequential(*layers, *([norm_module] if norm_module is not None else []), nn.ReLU())

        branches: list[nn.Module] = [block(nn.Conv2d(in_channels, out_channels, 1, bias=bias))]
        for rate in atrous_rates:
            branches.append(block(nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=bias)))
        branches.append(block(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=bias)))
        self.convs = nn.ModuleList(branches)
        project = project_channels or out_channels
        self.out_channels = project
        self.project = nn.Sequential(nn.Conv2d(len(branches) * out_channels, project, 1, bias=project_bias), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [conv(x) for conv in self.convs[:-1]]
        pool_branch = list(self.convs[-1].children())
        pooled = pool_branch[1](pool_branch[0](x))  # (N, C, 1, 1)
        for layer in pool_branch[2:]:
            # PyTorch's GroupNorm refuses a single value per group (one RoI, one channel per group); duplicating the
            # value keeps the group's mean and variance, so the result is unchanged (and the graph has no branch on
            # the shape, which FX tracing could not follow)
            grouped = isinstance(layer, nn.GroupNorm)
            pooled = layer(pooled.expand(-1, -1, 1, 2))[..., :1] if grouped else layer(pooled)
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))
