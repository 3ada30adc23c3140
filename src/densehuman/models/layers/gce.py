"""Parsing R-CNN's Geometric and Context Encoding head, with the decoupled convolutions around it (PBD).

``rcnn/modeling/parsing_rcnn/heads/gce_heads.py`` (``roi_gce_head``): the pooled RoI features pass

1. ``num_convs_before`` x [3x3 conv + ReLU] ("before GCE"; 0 in the released configs),
2. the ASPP part: 1x1 and three 3x3 convolutions at rates 6, 12, 18 and an image-pooling branch, ``aspp_dim`` wide
   each, concatenated and projected to ``conv_dim`` by a 1x1 conv + ReLU (no norm: ``GCE_HEAD.USE_BN/USE_GN`` are
   off in every Parsing R-CNN config),
3. the non-local block (embedded Gaussian, scaled, ``inter = nonlocal_ratio * conv_dim``: Parsing R-CNN's
   ``NL_RATIO`` 1.0, DensePoseFnL's reimplementation 0.5; GroupNorm after its output conv),
4. ``num_convs_after`` x [3x3 conv + ReLU] ("after GCE", PBD: 4 in the released configs).

The paper's ablations are the constructor's switches: ``aspp`` (off: one 3x3 conv + ReLU to ``conv_dim`` in its
place), ``use_nonlocal``, and the convolutions before / after. ``norm="GN"`` puts GroupNorm in every convolution
(RP-R-CNN's ``USE_GN``), which helps training from scratch. Initialization: kaiming-normal (fan_out) convolutions
with zero biases, the non-local block's convolutions normal(0, 0.01).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from densehuman.models.layers.aspp import ASPP
from densehuman.models.layers.conv import Conv2dNorm, NormName, msra_fill
from densehuman.models.layers.nonlocal_block import NonLocalBlock2D


class GCEHead(nn.Module):
    """(R, in_channels, s, s) RoI features -> (R, conv_dim, s, s)."""

    def __init__(
        self,
        in_channels: int,
        conv_dim: int = 512,
        aspp_dim: int = 256,
        atrous_rates: Sequence[int] = (6, 12, 18),
        aspp: bool = True,
        use_nonlocal: bool = True,
        num_convs_before: int = 0,
        num_convs_after: int = 4,
        norm: NormName = "",
        nonlocal_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        if num_convs_before < 0 or num_convs_after < 0:
            raise ValueError(f"convolution counts must be >= 0, got {num_convs_before} and {num_convs_after}")
        channels = in_channels

        def conv(cin: int, kernel: int = 3) -> Conv2dNorm:
            layer = Conv2dNorm(cin, conv_dim, kernel, padding=kernel // 2, norm=norm, relu=True)
            msra_fill(layer)
            return layer

        self.before = nn.Sequential(*[conv(channels if k == 0 else conv_dim) for k in range(num_convs_before)])
        channels = conv_dim if num_convs_before else channels
        self.context: nn.Module
        if aspp:
            self.context = ASPP(channels, atrous_rates, aspp_dim, norm, project_channels=conv_dim, project_bias=True)
            for m in self.context.modules():
                if isinstance(m, nn.Conv2d):
                    msra_fill(m)
        else:
            self.context = conv(channels)
        inner = max(int(conv_dim * nonlocal_ratio), 1)
        self.nonlocal_block = (
            NonLocalBlock2D(conv_dim, inner, scaled=True, zero_init=False, init_std=0.01) if use_nonlocal else None
        )
        self.after = nn.Sequential(*[conv(conv_dim) for _ in range(num_convs_after)])
        self.out_channels = conv_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.context(self.before(x))
        if self.nonlocal_block is not None:
            x = self.nonlocal_block(x)
        result: torch.Tensor = self.after(x)
        return result
