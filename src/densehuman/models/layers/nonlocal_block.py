"""The embedded-Gaussian non-local block (Wang et al.): every position attends to every other one."""

from __future__ import annotations

import torch
from torch import nn


class NonLocalBlock2D(nn.Module):
    """Embedded-Gaussian non-local block with 2x2 max-pool subsampling and a zero-initialized GroupNorm(32) output,
    as detectron2's ``NONLocalBlock2D(in_channels, bn_layer=True)``; ``z = x + W(softmax(theta phi^T) g)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        inter = max(in_channels // 2, 1)
        self.inter_channels = inter
        self.g = nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.MaxPool2d(2))
        out_norm = nn.GroupNorm(32, in_channels)
        nn.init.zeros_(out_norm.weight)  # the block starts as the identity
        nn.init.zeros_(out_norm.bias)
        self.W = nn.Sequential(nn.Conv2d(inter, in_channels, 1), out_norm)
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g_x = self.g(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        theta_x = self.theta(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        phi_x = self.phi(x).reshape(n, self.inter_channels, -1)
        y = torch.softmax(theta_x @ phi_x, dim=-1) @ g_x
        y = y.transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.W(y)
