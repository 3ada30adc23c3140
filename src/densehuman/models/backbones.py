"""Backbones: detectron2's caffe-style ResNet (FrozenBN, stride in the 1x1 conv) and any timm feature extractor.

Every backbone maps a normalized (B, 3, H, W) batch to a dict of feature maps named ``res{log2(stride)}`` and tells
their channels and strides through ``output_shapes()``. Module and parameter names of :class:`ResNet` are
detectron2's (``stem.conv1``, ``res2.0.conv1.norm.running_var``, ``res3.0.shortcut``) without the
``backbone.bottom_up.`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops.misc import FrozenBatchNorm2d as TorchvisionFrozenBatchNorm2d

# Blocks per stage res2..res5 for each supported depth (bottleneck blocks).
RESNET_STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


class Backbone(nn.Module):
    """A multi-scale feature extractor: ``forward(x) -> {name: (B, C, H / stride, W / stride)}``."""

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        """``{name: (channels, stride)}`` of the outputs, in increasing stride."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError


class FrozenBatchNorm2d(TorchvisionFrozenBatchNorm2d):
    """BatchNorm with fixed statistics and affine (buffers ``weight``, ``bias``, ``running_mean``, ``running_var``,
    eps 1e-5) that keeps the input dtype under autocast, as detectron2's does."""

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + bias.reshape(1, -1, 1, 1).to(x.dtype)


class ConvNorm(nn.Conv2d):
    """detectron2's ``layers.Conv2d`` with a FrozenBatchNorm ``norm`` (no bias, no activation)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
        self.norm: nn.Module = FrozenBatchNorm2d(out_channels)
        # detectron2's c2_msra_fill
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))

    @torch.no_grad()
    def fold_norm(self) -> None:
        """Fold the frozen norm into the convolution (``weight * scale`` and a ``bias``) for inference.

        ``norm`` becomes an ``nn.Identity``: the state dict loses the norm buffers and gains ``bias``, so it no
        longer has detectron2's layout. The scale and shift are computed in float64 so that the folded layer
        differs from the unfolded one by float32 rounding only. A second call does nothing.
        """
        if not isinstance(self.norm, FrozenBatchNorm2d):
            return
        norm = self.norm
        scale = norm.weight.double() * (norm.running_var.double() + norm.eps).rsqrt()
        shift = norm.bias.double() - norm.running_mean.double() * scale
        self.weight = nn.Parameter(
            (self.weight.double() * scale.view(-1, 1, 1, 1)).to(self.weight.dtype), requires_grad=False
        )
        self.bias = nn.Parameter(shift.to(self.weight.dtype), requires_grad=False)
        self.norm = nn.Identity()


class BasicStem(nn.Module):
    """7x7 stride-2 conv + FrozenBN + ReLU, then 3x3 stride-2 max-pool: stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_channels, kernel_size=7, stride=2, padding=3)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.relu(self.conv1(x), inplace=True), kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block; ``stride_in_1x1`` puts the stride in the first conv (MSRA/caffe style)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        stride_in_1x1: bool = True,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.shortcut: ConvNorm | None = (
            ConvNorm(in_channels, out_channels, kernel_size=1, stride=stride) if in_channels != out_channels else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1)
        self.conv2 = ConvNorm(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
        )
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        # In place on fresh conv outputs (autograd-safe: no backward reads them): on a CPU, allocating the
        # stride-4 maps anew costs as much as the additions themselves.
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu(out, inplace=True)


def freeze_module(module: nn.Module) -> None:
    """Stop gradients to every parameter of ``module`` (its FrozenBN holds buffers only)."""
    for p in module.parameters():
        p.requires_grad_(False)


class ResNet(Backbone):
    """detectron2's ``build_resnet_backbone`` with ``NORM: FrozenBN``: stem + stages res2..res5.

    Args:
        depth: 50, 101 or 152.
        stem_out_channels: detectron2 ``STEM_OUT_CHANNELS`` (64).
        res2_out_channels: detectron2 ``RES2_OUT_CHANNELS`` (256); doubles every stage.
        width_per_group: detectron2 ``WIDTH_PER_GROUP`` (64); bottleneck width of res2 is
            ``num_groups * width_per_group``, doubling every stage.
        num_groups: >1 gives ResNeXt.
        stride_in_1x1: detectron2 ``STRIDE_IN_1X1`` (True for the MSRA-initialised model zoo).
        res5_dilation: 1 or 2 (2 keeps res5 at stride 16).
        freeze_at: 0 trains everything, 1 freezes the stem, 2 the stem and res2 (detectron2 default), ... 5.
        out_features: which of ``res2``..``res5`` to return.
    """

    def __init__(
        self,
        depth: int = 50,
        stem_out_channels: int = 64,
        res2_out_channels: int = 256,
        width_per_group: int = 64,
        num_groups: int = 1,
        stride_in_1x1: bool = True,
        res5_dilation: int = 1,
        freeze_at: int = 2,
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
    ) -> None:
        super().__init__()
        if depth not in RESNET_STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(RESNET_STAGE_BLOCKS)}, got {depth}")
        if res5_dilation not in (1, 2):
            raise ValueError(f"res5_dilation must be 1 or 2, got {res5_dilation}")
        if not 0 <= freeze_at <= 5:
            raise ValueError(f"freeze_at must be in 0..5, got {freeze_at}")
        unknown = set(out_features) - {"res2", "res3", "res4", "res5"}
        if unknown or not out_features:
            raise ValueError(f"out_features must be a non-empty subset of res2..res5, got {out_features}")
        self.out_features = tuple(sorted(out_features))
        self.stem = BasicStem(3, stem_out_channels)
        self._shapes: dict[str, tuple[int, int]] = {}
        self.stage_names: list[str] = []
        in_channels, out_channels = stem_out_channels, res2_out_channels
        bottleneck_channels = num_groups * width_per_group
        stride = 4
        last_stage = max(int(name[3]) for name in self.out_features)
        for index, stage in enumerate(range(2, last_stage + 1)):
            dilation = res5_dilation if stage == 5 else 1
            first_stride = 1 if index == 0 or (stage == 5 and dilation == 2) else 2
            stride *= first_stride
            blocks = []
            for block in range(RESNET_STAGE_BLOCKS[depth][index]):
                blocks.append(
                    BottleneckBlock(
                        in_channels,
                        out_channels,
                        bottleneck_channels,
                        stride=first_stride if block == 0 else 1,
                        num_groups=num_groups,
                        stride_in_1x1=stride_in_1x1,
                        dilation=dilation,
                    )
                )
                in_channels = out_channels
            name = f"res{stage}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self._shapes[name] = (out_channels, stride)
            out_channels *= 2
            bottleneck_channels *= 2
        self.freeze_at = freeze_at
        if freeze_at >= 1:
            freeze_module(self.stem)
        for stage, name in enumerate(self.stage_names, start=2):
            if freeze_at >= stage:
                freeze_module(getattr(self, name))

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        return {name: self._shapes[name] for name in self.out_features}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet expects a (B, 3, H, W) batch, got {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outputs[name] = x
        return outputs


class TimmBackbone(Backbone):
    """Any timm model with ``features_only=True`` as a backbone; outputs named ``res{log2(stride)}``.

    The input normalization is the detector's (``pixel_mean``/``pixel_std``/``input_format``): timm's ImageNet
    weights expect RGB with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) on a 0..255 scale.

    Args:
        name: timm model name, e.g. ``"resnet50"`` or ``"convnext_tiny"``.
        pretrained: load timm's pretrained weights (needs them downloaded or cached).
        out_indices: timm feature indices; (1, 2, 3, 4) gives strides 4..32 for most CNNs.
        freeze_bn: replace every BatchNorm by a frozen one (as detectron2 does for ResNets with small batches).
        feature_location: ``"expansion"`` takes each stage's features before its pointwise-linear projection
            (the wider expansion maps: EfficientNet-style models; what DensePoseFnL's BiFPN reads).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        freeze_bn: bool = False,
        feature_location: str = "",
    ) -> None:
        super().__init__()
        import timm  # local: timm is heavy to import and only needed here

        options: dict[str, Any] = {"feature_location": feature_location} if feature_location else {}
        try:
            self.body = timm.create_model(
                name, pretrained=pretrained, features_only=True, out_indices=tuple(out_indices), **options
            )
        except TypeError as err:  # a model family without feature locations (e.g. ResNets)
            raise ValueError(f"timm model {name} does not take feature_location={feature_location!r} ({err})") from err
        if freeze_bn:
            from timm.layers import freeze_batch_norm_2d

            self.body = freeze_batch_norm_2d(self.body)
        info = self.body.feature_info
        channels = [int(c) for c in info.channels()]  # type: ignore[operator, union-attr]
        strides = [int(s) for s in info.reduction()]  # type: ignore[operator, union-attr]
        for stride in strides:
            if stride & (stride - 1):
                raise ValueError(f"timm model {name} has a feature stride {stride} that is not a power of two")
        self.names = [f"res{int(math.log2(s))}" for s in strides]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"out_indices {tuple(out_indices)} give repeated strides {strides}")
        self._shapes = {n: (int(c), int(s)) for n, c, s in zip(self.names, channels, strides, strict=True)}

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        return dict(self._shapes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features: list[Tensor] = self.body(x)
        # indexed (not zipped): FX graph-mode quantization traces this with a proxy of unknown length
        return {name: features[k] for k, name in enumerate(self.names)}
