"""detectron2 DensePose's Panoptic-FPN ``Decoder``: p2..p5 merged into one stride-4 map that the DensePose RoI
pooler reads, and its windowed evaluation for inference (only where the detections are).

Parameter names are detectron2's (``p2.0``, ``p5.4``, ``predictor``) without the ``roi_heads.decoder.`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from densehuman.models.layers.conv import Conv2dNorm, NormName, msra_fill

_DECODER_RESERVED = frozenset({"predictor", "in_features", "common_stride", "out_channels"})


class Decoder(nn.Module):
    """Panoptic-FPN semantic decoder: merges FPN levels into one map at ``common_stride``.

    Each level runs ``max(1, log2(stride / common_stride))`` times [3x3 conv (+ norm) + ReLU (+ 2x bilinear
    upsample when the level is coarser than ``common_stride``)]; the level outputs are summed and a 1x1 conv
    ``predictor`` maps them to ``num_classes`` channels. Level ``name``'s chain is the submodule ``name`` (``p2.0``,
    ``p4.2``: index 1 is the upsample), as in detectron2. Levels must have exactly ``stride / common_stride`` times
    the size of the finest level (true for FPN inputs padded to a multiple of the coarsest stride).
    """

    def __init__(
        self,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        conv_dims: int = 256,
        num_classes: int = 256,
        common_stride: int = 4,
        norm: NormName = "",
    ) -> None:
        super().__init__()
        if not (len(in_features) == len(in_channels) == len(in_strides) > 0):
            raise ValueError("in_features, in_channels and in_strides must be non-empty and of equal length")
        self.in_features = tuple(in_features)
        self.common_stride = common_stride
        for name, channels, stride in zip(in_features, in_channels, in_strides, strict=True):
            if not name.isidentifier() or name in _DECODER_RESERVED or hasattr(self, name):
                raise ValueError(f"feature name {name!r} cannot be a submodule name")
            if stride < common_stride:
                raise ValueError(f"level {name!r} has stride {stride} below the common stride {common_stride}")
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                conv = Conv2dNorm(channels if k == 0 else conv_dims, conv_dims, 3, padding=1, norm=norm, relu=True)
                msra_fill(conv)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(conv_dims, num_classes, 1)
        msra_fill(self.predictor)
        self.out_channels = num_classes

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features`` in the order of ``in_features``; returns (N, num_classes, H/common_stride, ...)."""
        if len(features) != len(self.in_features):
            raise ValueError(f"expected {len(self.in_features)} feature maps, got {len(features)}")
        x = getattr(self, self.in_features[0])(features[0])
        for name, feature in zip(self.in_features[1:], features[1:], strict=True):
            y = getattr(self, name)(feature)
            # in place only without autograd: the ReLU that made x needs its output for backward
            x = x + y if torch.is_grad_enabled() else x.add_(y)
        return self.predictor(x)

    def _upsampling(self, name: str) -> int:
        """How much level ``name``'s chain enlarges its input (2 per bilinear upsampling)."""
        return 2 ** sum(isinstance(op, nn.Upsample) for op in getattr(self, name))

    def output_size(self, features: Sequence[torch.Tensor]) -> tuple[int, int]:
        """(H, W) of ``forward``'s output: the first level's size times its upsampling."""
        scale = self._upsampling(self.in_features[0])
        return features[0].shape[-2] * scale, features[0].shape[-1] * scale

    def supports_regions(self) -> bool:
        """Whether every layer is local (convolutions without norm, bilinear upsampling), which ``forward_region``
        needs: a GroupNorm mixes the whole map."""
        return all(
            isinstance(op, nn.Upsample) or (isinstance(op, Conv2dNorm) and op.norm is None)
            for name in self.in_features
            for op in getattr(self, name)
        )

    def forward_region(
        self, features: Sequence[torch.Tensor], rows: tuple[int, int], cols: tuple[int, int]
    ) -> torch.Tensor:
        """``forward(features)[:, :, rows[0]:rows[1], cols[0]:cols[1]]`` computed from the crops of ``features``
        that this window of the output depends on, for inference on the parts of the map that RoIs read.

        Each level's crop is the window widened, layer by layer from the output back, by what the layer reads: the
        kernel radius for a convolution, the two bilinear taps for an upsampling. Values computed next to a crop
        edge (zero padding, clamped taps) are wrong but fall outside the window, except where the crop edge is the
        map edge, where they are exactly the full map's. So the result equals ``forward`` up to float rounding.
        Needs ``supports_regions()``; ``rows`` and ``cols`` are half-open ranges within the output size.
        """
        if len(features) != len(self.in_features):
            raise ValueError(f"expected {len(self.in_features)} feature maps, got {len(features)}")
        if not self.supports_regions():
            raise ValueError("forward_region needs a decoder without norm layers")
        x: torch.Tensor | None = None
        for name, feature in zip(self.in_features, features, strict=True):
            ops = list(getattr(self, name))
            scale = self._upsampling(name)
            height, width = feature.shape[-2] * scale, feature.shape[-1] * scale
            (r0, r1), (c0, c1) = rows, cols
            for op in reversed(ops):
                (r0, r1), height = _input_window(op, r0, r1, height)
                (c0, c1), width = _input_window(op, c0, c1, width)
            y = getattr(self, name)(feature[:, :, r0:r1, c0:c1])
            y = y[:, :, rows[0] - r0 * scale : rows[1] - r0 * scale, cols[0] - c0 * scale : cols[1] - c0 * scale]
            x = y if x is None else x + y if torch.is_grad_enabled() else x.add_(y)
        assert x is not None  # in_features is not empty
        return self.predictor(x)


def _input_window(op: nn.Module, start: int, stop: int, size: int) -> tuple[tuple[int, int], int]:
    """The input range (and input size) that ``op`` reads to compute its output ``[start, stop)`` of ``size``
    exactly along one axis: ``[o - r, o + r]`` for a "same" convolution of radius r; for a x2 bilinear upsampling
    (align_corners=False) the taps ``floor(o / 2 - 1 / 4)`` and the next one."""
    if isinstance(op, nn.Upsample):
        size //= 2
        return (max(start // 2 - 1, 0), min((stop - 1) // 2 + 2, size)), size
    assert isinstance(op, nn.Conv2d)
    radius = op.padding[0]
    assert isinstance(radius, int)
    return (max(start - radius, 0), min(stop + radius, size)), size
