"""The DensePose chart predictor: head features -> coarse and fine segmentation, U and V (and confidences).

Layer names follow detectron2's ``predictors/chart*.py`` (prefix ``roi_heads.densepose_predictor.``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.instances import DensePoseOutput
from densehuman.models.layers.conv import msra_fill

UVConfidence = Literal["iid_iso", "indep_aniso"]


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

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        if self.up_scale == 1:
            return y
        return F.interpolate(y, scale_factor=self.up_scale, mode="bilinear", align_corners=False)

    def _raw_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each field's layer output, upsampled."""
        layers = self._layers()
        if self.fused_weight is None or torch.is_grad_enabled():
            return {field: self._upsample(layer(x)) for field, layer in layers}
        first = layers[0][1]  # every layer has the same kernel, stride and padding
        padding = first.padding
        assert isinstance(padding, tuple)
        y = F.conv_transpose2d(x, self.fused_weight, self.fused_bias, stride=first.stride, padding=padding)
        y = self._upsample(y)
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
