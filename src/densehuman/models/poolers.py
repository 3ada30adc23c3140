"""Multi-level RoIAlign: detectron2's ``ROIPooler`` on ``torchvision.ops.roi_align`` (box and DensePose branches)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import roi_align


def _sample_axis(
    start: torch.Tensor, bin_size: torch.Tensor, output_size: int, sampling_ratio: int, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps along one axis for torchvision's RoIAlign: for R RoIs and the ``output_size * sampling_ratio``
    sample positions, the low and high indices (R, P) and their weights (R, P), zero where the sample is outside
    ``[-1, size]`` (the kernel's ``pre_calc_for_bilinear_interpolate``, same arithmetic order)."""
    steps = torch.arange(output_size * sampling_ratio, device=start.device)
    bins = (steps // sampling_ratio).to(start.dtype)
    offsets = (steps % sampling_ratio).to(start.dtype) + 0.5
    pos = start[:, None] + bins * bin_size[:, None] + offsets * bin_size[:, None] / sampling_ratio
    inside = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = pos.long()  # floor: pos >= 0
    top = low >= size - 1
    low = torch.where(top, size - 1, low)
    high = torch.where(top, low, low + 1)
    pos = torch.where(top, low.to(pos.dtype), pos)
    frac = pos - low
    return low, high, (1.0 - frac) * inside, frac * inside


def roi_align_gather(
    feature: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """torchvision's ``roi_align`` (fixed ``sampling_ratio > 0``) as one ``F.embedding_bag``: every output pixel is
    the weighted sum of its ``4 * sampling_ratio**2`` bilinear taps, gathered as rows of the (N * H * W, C)
    channels-last view of ``feature``.

    On the CPU this is several times faster than torchvision's kernel, which visits each channel plane separately,
    and free of copies when ``feature`` is channels-last. Results equal ``roi_align``'s up to float rounding.

    Args:
        feature: (N, C, H, W).
        rois: (R, 5) rows ``(image index, x0, y0, x1, y1)`` in input pixels.

    Returns:
        (R, C, S, S) in channels-last memory.
    """
    if sampling_ratio <= 0:
        raise ValueError(f"roi_align_gather needs a fixed sampling_ratio > 0, got {sampling_ratio}")
    n, channels, height, width = feature.shape
    num = rois.shape[0]
    if num == 0:
        return feature.new_zeros((0, channels, output_size, output_size))
    table = feature.permute(0, 2, 3, 1).reshape(n * height * width, channels).contiguous()  # a view if NHWC
    rois = rois.to(feature.dtype)
    offset = 0.5 if aligned else 0.0
    x0, y0 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    roi_w, roi_h = rois[:, 3] * scale - offset - x0, rois[:, 4] * scale - offset - y0
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    y_low, y_high, wy_low, wy_high = _sample_axis(y0, roi_h / output_size, output_size, sampling_ratio, height)
    x_low, x_high, wx_low, wx_high = _sample_axis(x0, roi_w / output_size, output_size, sampling_ratio, width)
    base = rois[:, 0].long() * (height * width)
    # taps (R, Py, Px, 4): corners (low, low), (low, high), (high, low), (high, high) as the kernel's w1..w4
    rows = torch.stack([y_low, y_low, y_high, y_high], dim=-1)[:, :, None] * width
    cols = torch.stack([x_low, x_high, x_low, x_high], dim=-1)[:, None, :]
    index = rows + cols + base[:, None, None, None]
    weight_y = torch.stack([wy_low, wy_low, wy_high, wy_high], dim=-1)[:, :, None]
    weight_x = torch.stack([wx_low, wx_high, wx_low, wx_high], dim=-1)[:, None, :]
    weight = weight_y * weight_x / (sampling_ratio * sampling_ratio)
    # (R, S, r, S, r, 4) -> one bag per output pixel (R * S * S, r * r * 4)
    s, r = output_size, sampling_ratio
    bags = index.view(num, s, r, s, r, 4).permute(0, 1, 3, 2, 4, 5).reshape(num * s * s, r * r * 4)
    weights = weight.view(num, s, r, s, r, 4).permute(0, 1, 3, 2, 4, 5).reshape(num * s * s, r * r * 4)
    pooled = F.embedding_bag(bags, table, per_sample_weights=weights, mode="sum")
    return pooled.view(num, s, s, channels).permute(0, 3, 1, 2)


class RoIPooler(nn.Module):
    """RoIAlign of boxes from one or several feature levels (detectron2's ``ROIPooler``).

    ``scales`` are the levels' ``1 / stride``, finest first. With several levels a box of side
    ``sqrt(w h)`` goes to level ``floor(canonical_level + log2(side / canonical_box_size + 1e-8))``, clamped to the
    available levels. ``aligned=False`` is detectron2's "ROIAlign" (no half-pixel shift), True its "ROIAlignV2".
    """

    def __init__(
        self,
        output_size: int,
        scales: Sequence[float],
        sampling_ratio: int = 2,
        aligned: bool = False,
        canonical_box_size: float = 224.0,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if not scales:
            raise ValueError("scales must not be empty")
        levels = [-math.log2(s) for s in scales]
        if any(not math.isclose(lv, round(lv)) for lv in levels) or [round(lv) for lv in levels] != list(
            range(round(levels[0]), round(levels[0]) + len(levels))
        ):
            raise ValueError(f"scales must be 1 / 2**k for consecutive k, finest first, got {tuple(scales)}")
        self.output_size = output_size
        self.scales = tuple(float(s) for s in scales)
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level
        self.min_level = round(levels[0])
        self.max_level = round(levels[-1])
        # Pool with ``roi_align_gather`` instead of torchvision's kernel (set by ``prepare_for_inference``).
        self.gather = False

    def footprint(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(R, 4) int64 half-open ``(row0, row1, col0, col1)`` windows of a (height, width) map at ``scales[0]``
        that contain every cell RoIAlign reads for the boxes (R, 4) xyxy: the bilinear taps of all samples, with
        one cell of slack on each side for rounding."""
        offset = 0.5 if self.aligned else 0.0
        scaled = boxes.to(torch.float32) * self.scales[0] - offset
        start, extent = scaled[:, :2], scaled[:, 2:] - scaled[:, :2]
        if not self.aligned:
            extent = extent.clamp(min=1.0)
        low = start.floor().long() - 1
        high = (start + extent).floor().long() + 3
        limit = torch.tensor([width, height], device=boxes.device)  # x, y
        low = torch.minimum(low.clamp(min=0), limit)
        high = torch.minimum(high.clamp(min=0), limit)
        return torch.stack([low[:, 1], high[:, 1], low[:, 0], high[:, 0]], dim=1)

    def _pool(self, feature: torch.Tensor, rois: torch.Tensor, scale: float) -> torch.Tensor:
        if self.gather and self.sampling_ratio > 0 and feature.device.type == "cpu":
            return roi_align_gather(feature, rois, self.output_size, scale, self.sampling_ratio, self.aligned)
        size = (self.output_size, self.output_size)
        return roi_align(feature, rois, size, scale, self.sampling_ratio, self.aligned)

    def level_of(self, boxes: torch.Tensor) -> torch.Tensor:
        """(R,) int64 index into ``scales`` of the level each box (R, 4) is pooled from."""
        side = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_box_size + 1e-8))
        return level.clamp(min=self.min_level, max=self.max_level).long() - self.min_level

    def forward(self, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features``: one (N, C, H, W) map per scale; ``boxes``: N tensors (R_n, 4). Returns (sum R_n, C, S, S)."""
        if len(features) != len(self.scales):
            raise ValueError(f"expected {len(self.scales)} feature maps, got {len(features)}")
        ref = features[0]
        flat = ref.new_zeros((0, 4), dtype=torch.float32)
        image = ref.new_zeros((0, 1), dtype=torch.float32)
        if boxes:
            flat = torch.cat([b.to(ref.device, torch.float32) for b in boxes])
            image = torch.cat([flat.new_full((len(b), 1), n) for n, b in enumerate(boxes)])
        rois = torch.cat([image, flat], dim=1)  # (R, 5): image index, x0, y0, x1, y1
        if not torch.is_autocast_enabled(ref.device.type):
            # roi_align wants the feature dtype; under autocast it runs in float32 and the boxes stay exact
            rois = rois.to(ref.dtype)
        if len(features) == 1:
            return self._pool(ref, rois, self.scales[0])
        level = self.level_of(flat)  # from float32 boxes, also under autocast
        size = (self.output_size, self.output_size)
        out = torch.zeros((rois.shape[0], ref.shape[1], *size), dtype=ref.dtype, device=ref.device)
        if self.gather and ref.device.type == "cpu":  # the layout roi_align_gather gives
            out = out.contiguous(memory_format=torch.channels_last)
        for k, (feature, scale) in enumerate(zip(features, self.scales, strict=True)):
            inds = torch.nonzero(level == k).squeeze(1)
            out.index_put_((inds,), self._pool(feature, rois[inds], scale))
        return out
