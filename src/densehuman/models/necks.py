"""Feature pyramid network (detectron2's ``FPN`` with ``LastLevelMaxPool``): backbone maps -> p2..p6.

Parameter names are detectron2's (``fpn_lateral{k}``, ``fpn_output{k}``, k = log2(stride)) without the
``backbone.`` prefix, so a detectron2 checkpoint maps onto it by renaming the prefix only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

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
