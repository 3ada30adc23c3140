"""The embedded-Gaussian non-local block (Wang et al.): every position attends to every other one."""

from __future__ import annotations

import torch
from torch import nn

from densehuman.models.layers.conv import norm_layer


class NonLocalBlock2D(nn.Module):
    """``z = x + W(softmax(theta(x) phi(x)^T * s) g(x))`` with ``phi`` and ``g`` on a 2x2 max-pooled input and a
    GroupNorm after ``W``.

    The defaults are detectron2's ``NONLocalBlock2D(in_channels, bn_layer=True)``: ``inter_channels = in / 2``, no
    scaling (``s = 1``), PyTorch's default init and a zero-initialized norm (the block starts as the identity).
    Parsing R-CNN's ``NonLocal2d(512, 512, 512, use_gn=True)`` is ``inter_channels=in_channels, scaled=True``
    (``s = inter_channels ** -0.5``), ``init_std=0.01`` (normal weights, zero biases) and ``zero_init=False``
    (GroupNorm weight 1).
    """

    def __init__(
        self,
        in_channels: int,
        inter_channels: int | None = None,
        scaled: bool = False,
        zero_init: bool = True,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        inter = inter_channels or max(in_channels // 2, 1)
        self.inter_channels = inter
        self.scale = inter**-0.5 if scaled else 1.0
        self.g = nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.MaxPool2d(2))
        out_norm = norm_layer("GN", in_channels)
        assert isinstance(out_norm, nn.GroupNorm)
        if zero_init:
            nn.init.zeros_(out_norm.weight)
            nn.init.zeros_(out_norm.bias)
        self.W = nn.Sequential(nn.Conv2d(inter, in_channels, 1), out_norm)
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.MaxPool2d(2))
        if init_std is not None:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=init_std)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g_x = self.g(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        theta_x = self.theta(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        phi_x = self.phi(x).reshape(n, self.inter_channels, -1)
        affinity = theta_x @ phi_x
        if self.scale != 1.0:
            affinity = affinity * self.scale
        y = torch.softmax(affinity, dim=-1) @ g_x
        y = y.transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.W(y)
