"""Necks: backbone maps -> p2..p6. detectron2's feature pyramid (``FPN`` with ``LastLevelMaxPool``) and the
single-layer BiFPN of "Making DensePose fast and light" (``BiFPN``).

``FPN``'s parameter names are detectron2's (``fpn_lateral{k}``, ``fpn_output{k}``, k = log2(stride)) without the
``backbone.`` prefix, so a detectron2 checkpoint maps onto it by renaming the prefix only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def c2_xavier_fill(module: nn.Conv2d | nn.Linear) -> None:
    """detectron2's ``c2_xavier_fill``: Caffe2 XavierFill (kaiming-uniform with a=1), zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class FPN(nn.Module):
    """Top-down pyramid: 1x1 lateral convs, nearest 2x upsampling, sum, 3x3 output convs; p6 = max-pool(p5).

    Args:
        input_shapes: ``{name: (channels, stride)}`` of the backbone outputs (``Backbone.output_shapes()``).
        in_features: which inputs to use, e.g. ``("res2", "res3", "res4", "res5")``; strides must double.
        out_channels: channels of every output (detectron2 ``FPN.OUT_CHANNELS``, 256).
        top_block: add ``p{k+1}`` as ``max_pool2d(p_k, kernel 1, stride 2)`` of the coarsest output (feeds only the
            RPN in DensePose R-CNN).
        fuse_type: ``"sum"`` or ``"avg"`` of the lateral and top-down maps.
    """

    def __init__(
        self,
        input_shapes: Mapping[str, tuple[int, int]],
        in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        out_channels: int = 256,
        top_block: bool = True,
        fuse_type: str = "sum",
    ) -> None:
        super().__init__()
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(f"FPN inputs {missing} are not among the backbone outputs {list(input_shapes)}")
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        strides = [input_shapes[f][1] for f in in_features]
        for prev, cur in itertools.pairwise(strides):
            if cur != 2 * prev:
                raise ValueError(f"FPN input strides must double from level to level, got {strides}")
        self.in_features = tuple(in_features)
        self.out_channels = out_channels
        self.fuse_type = fuse_type
        self.top_block = top_block
        self._stages = [int(math.log2(s)) for s in strides]
        # Plain lists (finest first); the modules are registered under detectron2's names.
        self.lateral_convs: list[nn.Conv2d] = []
        self.output_convs: list[nn.Conv2d] = []
        for feature, stage in zip(self.in_features, self._stages, strict=True):
            lateral = nn.Conv2d(input_shapes[feature][0], out_channels, kernel_size=1)
            output = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"fpn_lateral{stage}", lateral)
            self.add_module(f"fpn_output{stage}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)
        self._shapes = {f"p{stage}": (out_channels, 2**stage) for stage in self._stages}
        if top_block:
            last = self._stages[-1] + 1
            self._shapes[f"p{last}"] = (out_channels, 2**last)

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        """``{name: (channels, stride)}``: p2..p5 (+ p6), finest first."""
        return dict(self._shapes)

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        inputs = [features[f] for f in self.in_features]
        prev = self.lateral_convs[-1](inputs[-1])
        results = [self.output_convs[-1](prev)]
        for level in range(len(inputs) - 2, -1, -1):
            lateral = self.lateral_convs[level](inputs[level])
            # size= instead of scale_factor=2 gives the same indices when the sizes are exact multiples and also
            # handles odd sizes (timm backbones on unpadded inputs).
            top_down = F.interpolate(prev, size=lateral.shape[-2:], mode="nearest")
            prev = lateral + top_down
            if self.fuse_type == "avg":
                prev = prev / 2
            results.insert(0, self.output_convs[level](prev))
        if self.top_block:
            results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))
        return dict(zip(self._shapes, results, strict=True))


class SeparableConvBlock(nn.Module):
    """DensePoseFnL's ``Conv3x3BnReLU``: depthwise 3x3 (``stride`` 1, or 2 to go down a level), pointwise 1x1 (no
    biases), BatchNorm (momentum 0.03), ReLU."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels, momentum=0.03)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.pointwise(self.depthwise(x))))


class FastNormalizedFusion(nn.Module):
    """EfficientDet's fast normalized fusion: ``sum_i w_i x_i / (sum_i w_i + 1e-4)`` with ``w = relu(weights)``,
    the weights initialized to 1."""

    def __init__(self, inputs: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(inputs))
        self.eps = eps
        self.inputs = inputs  # a plain int: FX tracing cannot branch on the parameter's size

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != self.inputs:
            raise ValueError(f"this fusion takes {self.inputs} maps, got {len(inputs)}")
        w = F.relu(self.weight)
        total = w[0] * inputs[0]
        for k in range(1, len(inputs)):
            total = total + w[k] * inputs[k]
        return total / (w.sum() + self.eps)


class BiFPN(nn.Module):
    """One BiFPN layer over four backbone levels (DensePoseFnL v2 ``fpn.py``, "Mobile Parsing R-CNN (B)").

    1x1 laterals (with bias) to ``out_channels``; top-down ``p4_td = conv(fuse(p4, up(p5)))``,
    ``p3_td = conv(fuse(p3, up(p4_td)))``; bottom-up ``p2 = conv(fuse(p2, up(p3_td)))``,
    ``p3 = conv(fuse(p3, p3_td, down(p2)))``, ``p4 = conv(fuse(p4, p4_td, down(p3)))``, ``p5 = conv(fuse(p5,
    down(p4)))``; ``p6 = max_pool(p5, kernel 1, stride 2)``. ``up`` is nearest (the paper: faster than bilinear on
    phones), ``down`` a stride-2 ``SeparableConvBlock`` (not a max-pool), every ``conv`` a ``SeparableConvBlock``
    and every ``fuse`` a ``FastNormalizedFusion``. Outputs are named and strided like ``FPN``'s.
    """

    def __init__(
        self,
        input_shapes: Mapping[str, tuple[int, int]],
        in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        out_channels: int = 64,
        top_block: bool = True,
    ) -> None:
        super().__init__()
        if len(in_features) != 4:
            raise ValueError(f"BiFPN takes four levels (strides 4..32), got {list(in_features)}")
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(f"BiFPN inputs {missing} are not among the backbone outputs {list(input_shapes)}")
        strides = [input_shapes[f][1] for f in in_features]
        for prev, cur in itertools.pairwise(strides):
            if cur != 2 * prev:
                raise ValueError(f"BiFPN input strides must double from level to level, got {strides}")
        self.in_features = tuple(in_features)
        self.out_channels = out_channels
        self.top_block = top_block
        self.lateral = nn.ModuleList([nn.Conv2d(input_shapes[f][0], out_channels, 1) for f in in_features])
        for conv in self.lateral:
            assert isinstance(conv, nn.Conv2d)
            c2_xavier_fill(conv)
        # fusions and convolutions: p4_td, p3_td, p2_out, p3_out, p4_out, p5_out
        self.fuse = nn.ModuleList([FastNormalizedFusion(n) for n in (2, 2, 2, 3, 3, 2)])
        self.conv = nn.ModuleList([SeparableConvBlock(out_channels) for _ in range(6)])
        self.down = nn.ModuleList([SeparableConvBlock(out_channels, stride=2) for _ in range(3)])
        stages = [int(math.log2(s)) for s in strides]
        self._shapes = {f"p{stage}": (out_channels, 2**stage) for stage in stages}
        if top_block:
            self._shapes[f"p{stages[-1] + 1}"] = (out_channels, 2 ** (stages[-1] + 1))

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        return dict(self._shapes)

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        p2, p3, p4, p5 = (lat(features[f]) for lat, f in zip(self.lateral, self.in_features, strict=True))

        def up(x: Tensor, like: Tensor) -> Tensor:
            return F.interpolate(x, size=like.shape[-2:], mode="nearest")

        fuse, conv, down = self.fuse, self.conv, self.down
        p4_td = conv[0](fuse[0]([p4, up(p5, p4)]))
        p3_td = conv[1](fuse[1]([p3, up(p4_td, p3)]))
        p2_out = conv[2](fuse[2]([p2, up(p3_td, p2)]))
        p3_out = conv[3](fuse[3]([p3, p3_td, down[0](p2_out)]))
        p4_out = conv[4](fuse[4]([p4, p4_td, down[1](p3_out)]))
        p5_out = conv[5](fuse[5]([p5, down[2](p4_out)]))
        outputs = [p2_out, p3_out, p4_out, p5_out]
        if self.top_block:
            outputs.append(F.max_pool2d(p5_out, kernel_size=1, stride=2, padding=0))
        return dict(zip(self._shapes, outputs, strict=True))
