"""The DensePose branch of DensePose R-CNN: RoI pooling, (decoder,) head, predictor, losses and the conversion of
predictor outputs to chart results.

Boxes are xyxy in pixels of the network input; features are the neck's ``{name: (N, C, H, W)}`` maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from densehuman.models.densepose_head import Decoder
from densehuman.models.densepose_loss import DensePoseChartLoss
from densehuman.models.instances import DensePoseOutput, DensePoseTarget, Targets
from densehuman.structures import ChartResult


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


def _matched_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of box ``a[k]`` with box ``b[k]``, (K,) for (K, 4) xyxy inputs."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area_a + area_b - inter)


class DensePoseBranch(nn.Module):
    """Features + boxes -> DensePose chart outputs per box, and their training losses.

    The path is: the ``in_features`` maps -> ``decoder`` (optional; merges them into one stride-4 map) -> ``pooler``
    -> ``head`` -> ``predictor`` (-> ``DensePoseOutput``). ``pooler`` has one scale with a decoder, else one per
    entry of ``in_features``. In training (``losses``) only proposals whose IoU with their matched GT box exceeds
    ``fg_iou_threshold`` (strictly, as detectron2's ``DensePoseDataFilter``) and whose GT has a ``DensePoseTarget``
    are used.
    """

    def __init__(
        self,
        in_features: Sequence[str],
        pooler: RoIPooler,
        head: nn.Module,
        predictor: nn.Module,
        loss: DensePoseChartLoss,
        decoder: Decoder | None = None,
        fg_iou_threshold: float = 0.7,
    ) -> None:
        super().__init__()
        self.in_features = tuple(in_features)
        if decoder is not None and decoder.in_features != self.in_features:
            raise ValueError(f"decoder reads {decoder.in_features}, the branch {self.in_features}")
        levels = 1 if decoder is not None else len(self.in_features)
        if len(pooler.scales) != levels:
            raise ValueError(f"the pooler needs {levels} scale(s) here, got {pooler.scales}")
        self.decoder = decoder
        self.pooler = pooler
        self.head = head
        self.predictor = predictor
        self.loss = loss
        self.fg_iou_threshold = fg_iou_threshold

    def forward(self, features: Mapping[str, torch.Tensor], boxes: Sequence[torch.Tensor]) -> DensePoseOutput:
        """Outputs for all boxes of all images, concatenated in image order; ``boxes``: one (R_n, 4) per image."""
        maps = [features[name] for name in self.in_features]
        if self.decoder is not None:
            maps = [self.decoder(maps)]
        pooled = self.pooler(maps, [b.detach() for b in boxes])
        output: DensePoseOutput = self.predictor(self.head(pooled))
        return output

    def predict(self, features: Mapping[str, torch.Tensor], boxes: Sequence[torch.Tensor]) -> list[DensePoseOutput]:
        """Outputs per image for its boxes (R_n, 4)."""
        output = self(features, boxes)
        result = []
        start = 0
        for b in boxes:
            result.append(output.index(slice(start, start + len(b))))
            start += len(b)
        return result

    def losses(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        matched: Sequence[torch.Tensor],
        targets: Sequence[Targets],
    ) -> dict[str, torch.Tensor]:
        """DensePose losses of the foreground ``proposals`` (K_n, 4) of each image, ``matched`` (K_n,) giving the
        index of each one's GT box in ``targets[n]``. With no usable proposal every loss is 0 with a graph that
        reaches every parameter."""
        if not (len(proposals) == len(matched) == len(targets)):
            raise ValueError(f"got {len(proposals)} proposal sets, {len(matched)} matches and {len(targets)} targets")
        kept_boxes: list[torch.Tensor] = []
        kept_targets: list[DensePoseTarget] = []
        for boxes, idx, target in zip(proposals, matched, targets, strict=True):
            keep = self._keep(boxes, idx, target)
            kept_boxes.append(boxes.detach()[keep])
            for j in idx[keep].tolist():
                dp = target.densepose[j]
                assert dp is not None  # _keep checked
                kept_targets.append(dp)
        output = self(features, kept_boxes)
        boxes = torch.cat(kept_boxes) if kept_boxes else output.u.new_zeros((0, 4))
        return self.loss(output, boxes, kept_targets)

    @torch.no_grad()
    def _keep(self, boxes: torch.Tensor, idx: torch.Tensor, target: Targets) -> torch.Tensor:
        if len(boxes) != len(idx):
            raise ValueError(f"{len(boxes)} proposals but {len(idx)} matched indices")
        if target.densepose and len(target.densepose) != len(target.boxes):
            raise ValueError(f"{len(target.boxes)} GT boxes but {len(target.densepose)} DensePose entries")
        if not target.densepose or len(boxes) == 0:
            return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
        has_dp = torch.tensor([d is not None for d in target.densepose], device=boxes.device)
        idx = idx.to(boxes.device).long()
        iou = _matched_iou(boxes.to(torch.float32), target.boxes.to(boxes.device, torch.float32)[idx])
        return (iou > self.fg_iou_threshold) & has_dp[idx]


def to_chart_result(output: DensePoseOutput, box_xyxy: torch.Tensor) -> ChartResult:
    """One box's outputs -> its chart result at box size, as detectron2's ``ToChartResultConverter``.

    The box becomes ``(x0, y0, x1 - x0, y1 - y0)`` (in the box's dtype) truncated to integers; S, I, U, V are
    resized bilinearly (align_corners=False) to ``(max(h, 1), max(w, 1))``; ``labels = argmax(I) * (argmax(S) > 0)``
    and ``uv`` takes U, V from the channel of each pixel's label (0 on background).
    """
    if len(output) != 1:
        raise ValueError(f"to_chart_result converts one box, got {len(output)} outputs")
    box = box_xyxy.reshape(4)
    w = max(int((box[2] - box[0]).long()), 1)
    h = max(int((box[3] - box[1]).long()), 1)

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, (h, w), mode="bilinear", align_corners=False)[0]

    with torch.no_grad():
        coarse = resize(output.coarse_segm).argmax(dim=0)
        labels = resize(output.fine_segm).argmax(dim=0) * (coarse > 0).long()
        index = labels[None]
        u = resize(output.u).gather(0, index)[0]
        v = resize(output.v).gather(0, index)[0]
        fg = labels > 0
        uv = torch.stack([torch.where(fg, u, 0.0), torch.where(fg, v, 0.0)]).to(torch.float32)
    return ChartResult(labels.cpu().numpy(), uv.cpu().numpy())


def to_chart_results(output: DensePoseOutput, boxes_xyxy: torch.Tensor) -> list[ChartResult]:
    """``to_chart_result`` for each of the R boxes (R, 4) of ``output``."""
    if len(output) != boxes_xyxy.shape[0]:
        raise ValueError(f"{len(output)} outputs but {boxes_xyxy.shape[0]} boxes")
    return [to_chart_result(output.index(slice(k, k + 1)), boxes_xyxy[k]) for k in range(len(output))]
