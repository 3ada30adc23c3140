"""DensePose R-CNN per-RoI layers: the V1ConvX and DeepLab heads and the chart predictor (the panoptic-FPN decoder
is in ``densehuman.models.decoder``).

Layer and parameter names follow detectron2's ``projects/DensePose`` (``roi_heads/v1convx.py``,
``roi_heads/deeplab.py``, ``predictors/chart*.py``), so a detectron2 checkpoint maps onto these modules by replacing
the prefixes ``roi_heads.densepose_head.`` and ``roi_heads.densepose_predictor.``. Initialization follows
detectron2 too: kaiming-normal (``fan_out``, ReLU) weights and zero biases (``c2_msra_fill`` /
``initialize_module_params``), PyTorch defaults in the ASPP block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.instances import DensePoseOutput

NormName = Literal["", "GN"]
UVConfidence = Literal["iid_iso", "indep_aniso"]


def msra_fill(module: nn.Conv2d | nn.ConvTranspose2d) -> None:
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
        return F.relu(x, inplace=True) if self.relu else x


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
                msra_fill(module)
        # All layers' weights and biases concatenated along the outputs (``fuse_layers``); not in the state dict.
        self.fused_weight: torch.Tensor | None
        self.fused_bias: torch.Tensor | None
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    def _layers(self) -> list[tuple[str, nn.ConvTranspose2d]]:
        """(output field, layer) pairs, in a fixed order."""
        names = {
            "coarse_segm": "ann_index_lowres",
            "fine_segm": "index_uv_lowres",
            "u": "u_lowres",
            "v": "v_lowres",
            "sigma_2": "sigma_2_lowres",
            "kappa_u": "kappa_u_lowres",
            "kappa_v": "kappa_v_lowres",
            "fine_segm_confidence": "fine_segm_confidence_lowres",
            "coarse_segm_confidence": "coarse_segm_confidence_lowres",
        }
        return [(field, getattr(self, layer)) for field, layer in names.items() if hasattr(self, layer)]

    @torch.no_grad()
    def fuse_layers(self) -> None:
        """Run all output layers as one transposed convolution (their weights concatenated along the outputs) and
        one upsampling, when autograd is off: fewer and larger calls. Take a copy of the weights: call it again
        after changing them."""
        layers = [layer for _, layer in self._layers()]
        biases = [layer.weight.new_zeros(layer.out_channels) if layer.bias is None else layer.bias for layer in layers]
        self.fused_weight = torch.cat([layer.weight for layer in layers], dim=1)
        self.fused_bias = torch.cat(biases)

    def _raw_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each field's layer output, upsampled."""
        layers = self._layers()
        if self.fused_weight is None or torch.is_grad_enabled():
            return {
                field: F.interpolate(layer(x), scale_factor=self.up_scale, mode="bilinear", align_corners=False)
                for field, layer in layers
            }
        first = layers[0][1]  # every layer has the same kernel, stride and padding
        padding = first.padding
        assert isinstance(padding, tuple)
        y = F.conv_transpose2d(x, self.fused_weight, self.fused_bias, stride=first.stride, padding=padding)
        y = F.interpolate(y, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        parts = y.split([layer.out_channels for _, layer in layers], dim=1)
        return dict(zip([field for field, _ in layers], parts, strict=True))

    def forward(self, x: torch.Tensor) -> DensePoseOutput:
        raw = self._raw_outputs(x)
        out = DensePoseOutput(coarse_segm=raw["coarse_segm"], fine_segm=raw["fine_segm"], u=raw["u"], v=raw["v"])
        out.sigma_2, out.kappa_u, out.kappa_v = raw.get("sigma_2"), raw.get("kappa_u"), raw.get("kappa_v")
        if self.segm_confidence:
            eps = self.segm_confidence_epsilon
            out.fine_segm_confidence = F.softplus(raw["fine_segm_confidence"]) + eps
            out.coarse_segm_confidence = F.softplus(raw["coarse_segm_confidence"]) + eps
            out.fine_segm = out.fine_segm * out.fine_segm_confidence
            out.coarse_segm = out.coarse_segm * out.coarse_segm_confidence
        return out
