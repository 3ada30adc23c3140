"""DensePose R-CNN per-RoI heads: detectron2's V1ConvX and DeepLab heads (the GCE head of Parsing R-CNN is
``densehuman.models.layers.gce``; the chart predictor is ``predictor.py``, the panoptic-FPN decoder
``decoder.py``).

Layer and parameter names follow detectron2's ``projects/DensePose`` (``roi_heads/v1convx.py``,
``roi_heads/deeplab.py``), so a detectron2 checkpoint maps onto these modules by replacing the prefix
``roi_heads.densepose_head.``. Initialization follows detectron2 too: kaiming-normal (``fan_out``, ReLU) weights and
zero biases (``c2_msra_fill`` / ``initialize_module_params``), PyTorch defaults in the ASPP block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.layers.aspp import ASPP
from densehuman.models.layers.conv import Conv2dNorm, NormName, msra_fill
from densehuman.models.layers.nonlocal_block import NonLocalBlock2D


class V1ConvXHead(nn.Module):
    """``num_convs`` x [conv ``kernel_size`` (same padding) + ReLU], named ``body_conv_fcn1..N``."""

    def __init__(self, in_channels: int, num_convs: int = 8, conv_dim: int = 512, kernel_size: int = 3) -> None:
        super().__init__()
        self.num_convs = num_convs
        channels = in_channels
        for i in range(num_convs):
            conv = nn.Conv2d(channels, conv_dim, kernel_size, padding=kernel_size // 2)
            msra_fill(conv)
            self.add_module(f"body_conv_fcn{i + 1}", conv)
            channels = conv_dim
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{i + 1}")(x), inplace=True)
        return x


class DeepLabHead(nn.Module):
    """detectron2's ``DensePoseDeepLabHead``: ASPP (rates 6, 12, 56, width ``in_channels``), an optional non-local
    block, then ``num_convs`` x [conv ``kernel_size`` + norm + ReLU] named ``body_conv_fcn1..N``."""

    def __init__(
        self,
        in_channels: int,
        num_convs: int = 8,
        conv_dim: int = 512,
        kernel_size: int = 3,
        norm: NormName = "GN",
        use_nonlocal: bool = False,
        atrous_rates: Sequence[int] = (6, 12, 56),
    ) -> None:
        super().__init__()
        self.num_convs = num_convs
        self.ASPP = ASPP(in_channels, atrous_rates, in_channels)
        self.NLBlock = NonLocalBlock2D(in_channels) if use_nonlocal else None
        channels = in_channels
        for i in range(num_convs):
            conv = Conv2dNorm(channels, conv_dim, kernel_size, padding=kernel_size // 2, norm=norm, relu=True)
            msra_fill(conv)
            self.add_module(f"body_conv_fcn{i + 1}", conv)
            channels = conv_dim
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ASPP(x)
        if self.NLBlock is not None:
            x = self.NLBlock(x)
        for i in range(self.num_convs):
            x = getattr(self, f"body_conv_fcn{i + 1}")(x)
        return x
