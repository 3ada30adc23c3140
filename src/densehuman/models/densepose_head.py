"""DensePose R-CNN per-RoI layers: the panoptic-FPN decoder, the V1ConvX and DeepLab heads and the chart predictor.

Layer and parameter names follow detectron2's ``projects/DensePose`` (``roi_heads/roi_head.py::Decoder``,
``roi_heads/v1convx.py``, ``roi_heads/deeplab.py``, ``predictors/chart*.py``), so a detectron2 checkpoint maps onto
these modules by replacing the prefixes ``roi_heads.decoder.``, ``roi_heads.densepose_head.`` and
``roi_heads.densepose_predictor.``. Initialization follows detectron2 too: kaiming-normal (``fan_out``, ReLU) weights
and zero biases (``c2_msra_fill`` / ``initialize_module_params``), PyTorch defaults in the ASPP block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.instances import DensePoseOutput

NormName = Literal["", "GN"]
_DECODER_RESERVED = frozenset({"predictor", "in_features", "common_stride", "out_channels"})
UVConfidence = Literal["iid_iso", "indep_aniso"]


def _msra_fill(module: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """detectron2's ``c2_msra_fill``: kaiming-normal weight (fan_out, ReLU gain), zero bias."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _norm(norm: NormName, channels: int) -> nn.Module | None:
    if norm == "":
        return None
    if norm == "GN":
        if channels % 32:
            raise ValueError(f"GroupNorm(32) needs a channel count divisible by 32, got {channels}")
        return nn.GroupNorm(32, channels)
    raise ValueError(f"norm must be '' or 'GN', got {norm!r}")


class Conv2dNorm(nn.Conv2d):
    """A convolution, then an optional norm layer, then an optional ReLU (detectron2's ``layers.Conv2d``).

    Parameters are named as detectron2's: ``weight``, ``bias`` (only without norm) and ``norm.weight``,
    ``norm.bias``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        norm: NormName = "",
        relu: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=norm == "")
        self.norm = _norm(norm, out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


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
                _msra_fill(conv)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(conv_dims, num_classes, 1)
        _msra_fill(self.predictor)
        self.out_channels = num_classes

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features`` in the order of ``in_features``; returns (N, num_classes, H/common_stride, ...)."""
        if len(features) != len(self.in_features):
            raise ValueError(f"expected {len(self.in_features)} feature maps, got {len(features)}")
        x = getattr(self, self.in_features[0])(features[0])
        for name, feature in zip(self.in_features[1:], features[1:], strict=True):
            x = x + getattr(self, name)(feature)
        return self.predictor(x)


class V1ConvXHead(nn.Module):
    """``num_convs`` x [conv ``kernel_size`` (same padding) + ReLU], named ``body_conv_fcn1..N``."""

    def __init__(self, in_channels: int, num_convs: int = 8, conv_dim: int = 512, kernel_size: int = 3) -> None:
        super().__init__()
        self.num_convs = num_convs
        channels = in_channels
        for i in range(num_convs):
            conv = nn.Conv2d(channels, conv_dim, kernel_size, padding=kernel_size // 2)
            _msra_fill(conv)
            self.add_module(f"body_conv_fcn{i + 1}", conv)
            channels = conv_dim
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


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
            _msra_fill(conv)
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


class ChartPredictor(nn.Module):
    """Head features (R, D, s, s) -> DensePose chart outputs (R, ., S, S), ``S = 2 * up_scale * s``.

    Each output is a ``ConvTranspose2d(kernel, stride 2)`` then a bilinear ``x up_scale`` upsample
    (align_corners=False): ``ann_index_lowres`` -> coarse segmentation (2 = fg/bg, or 15 = 14 parts + bg),
    ``index_uv_lowres`` -> fine segmentation (``num_patches + 1``), ``u_lowres`` and ``v_lowres`` -> U, V.

    Confidences (detectron2's ``DensePoseChartWithConfidencePredictor``): ``uv_confidence="iid_iso"`` adds
    ``sigma_2_lowres``; ``"indep_aniso"`` adds ``sigma_2_lowres``, ``kappa_u_lowres``, ``kappa_v_lowres`` (raw
    outputs; the loss applies softplus). ``segm_confidence`` adds 1-channel ``fine_segm_confidence_lowres`` and
    ``coarse_segm_confidence_lowres``: ``c = softplus(raw) + segm_confidence_epsilon`` is returned and multiplies
    the fine and coarse logits (a learned per-pixel temperature).
    """

    def __init__(
        self,
        in_channels: int,
        num_coarse_segm_channels: int = 2,
        num_patches: int = 24,
        deconv_kernel: int = 4,
        up_scale: int = 2,
        uv_confidence: UVConfidence | None = None,
        segm_confidence: bool = False,
        segm_confidence_epsilon: float = 0.01,
    ) -> None:
        super().__init__()
        if uv_confidence not in (None, "iid_iso", "indep_aniso"):
            raise ValueError(f"uv_confidence must be None, 'iid_iso' or 'indep_aniso', got {uv_confidence!r}")
        self.up_scale = up_scale
        self.uv_confidence = uv_confidence
        self.segm_confidence = segm_confidence
        self.segm_confidence_epsilon = segm_confidence_epsilon
        parts = num_patches + 1

        def deconv(out_channels: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(
                in_channels, out_channels, deconv_kernel, stride=2, padding=deconv_kernel // 2 - 1
            )

        self.ann_index_lowres = deconv(num_coarse_segm_channels)
        self.index_uv_lowres = deconv(parts)
        self.u_lowres = deconv(parts)
        self.v_lowres = deconv(parts)
        if uv_confidence is not None:
            self.sigma_2_lowres = deconv(parts)
        if uv_confidence == "indep_aniso":
            self.kappa_u_lowres = deconv(parts)
            self.kappa_v_lowres = deconv(parts)
        if segm_confidence:
            self.fine_segm_confidence_lowres = deconv(1)
            self.coarse_segm_confidence_lowres = deconv(1)
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                _msra_fill(module)

    def _up(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(layer(x), scale_factor=self.up_scale, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> DensePoseOutput:
        out = DensePoseOutput(
            coarse_segm=self._up(self.ann_index_lowres, x),
            fine_segm=self._up(self.index_uv_lowres, x),
            u=self._up(self.u_lowres, x),
            v=self._up(self.v_lowres, x),
        )
        if self.uv_confidence is not None:
            out.sigma_2 = self._up(self.sigma_2_lowres, x)
        if self.uv_confidence == "indep_aniso":
            out.kappa_u = self._up(self.kappa_u_lowres, x)
            out.kappa_v = self._up(self.kappa_v_lowres, x)
        if self.segm_confidence:
            eps = self.segm_confidence_epsilon
            out.fine_segm_confidence = F.softplus(self._up(self.fine_segm_confidence_lowres, x)) + eps
            out.coarse_segm_confidence = F.softplus(self._up(self.coarse_segm_confidence_lowres, x)) + eps
            out.fine_segm = out.fine_segm * out.fine_segm_confidence
            out.coarse_segm = out.coarse_segm * out.coarse_segm_confidence
        return out
