"""Multi-level RoIAlign: detectron2's ``ROIPooler`` on ``torchvision.ops.roi_align`` (box and DensePose branches)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import roi_align


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
        size = (self.output_size, self.output_size)
        if len(features) == 1:
            return roi_align(ref, rois, size, self.scales[0], self.sampling_ratio, self.aligned)
        level = self.level_of(flat)  # from float32 boxes, also under autocast
        out = ref.new_zeros((rois.shape[0], ref.shape[1], *size))
        for k, (feature, scale) in enumerate(zip(features, self.scales, strict=True)):
            inds = torch.nonzero(level == k).squeeze(1)
            pooled = roi_align(feature, rois[inds], size, scale, self.sampling_ratio, self.aligned)
            out = out.index_put((inds,), pooled)
        return out
