"""The DensePose branch of DensePose R-CNN: RoI pooling, (decoder,) head, predictor, losses and the conversion of
predictor outputs to chart results.

Boxes are xyxy in pixels of the network input; features are the neck's ``{name: (N, C, H, W)}`` maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from densehuman.models.branches.densepose.decoder import Decoder
from densehuman.models.branches.densepose.loss import DensePoseChartLoss
from densehuman.models.instances import DensePoseOutput, DensePoseTarget, Targets
from densehuman.models.poolers import RoIPooler

Window = tuple[int, int, int, int]  # half-open (row0, row1, col0, col1)
MAX_MERGED_WINDOWS = 32  # more boxes than this: one window around all of them (merging is quadratic)


def merge_windows(windows: Sequence[Window], margin: int = 4) -> list[Window]:
    """Cover the windows with fewer windows that cost no more to compute: two windows are replaced by their
    bounding window while its area (each side grown by ``margin``, for the layers' reach) is at most the sum of
    theirs. Overlapping and touching boxes merge, scattered ones stay apart."""

    def cost(w: Window) -> int:
        return (w[1] - w[0] + 2 * margin) * (w[3] - w[2] + 2 * margin)

    out = [w for w in windows if w[1] > w[0] and w[3] > w[2]]
    if len(out) > MAX_MERGED_WINDOWS:
        return [(min(w[0] for w in out), max(w[1] for w in out), min(w[2] for w in out), max(w[3] for w in out))]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                union = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                if cost(union) <= cost(a) + cost(b):
                    out[i] = union
                    del out[j]
                    merged = True
                    break
            if merged:
                break
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

    name = "densepose"

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
        # Decode only the windows the pooler reads (set by ``prepare_for_inference``; used without autograd).
        self.decode_regions = False

    def forward(self, features: Mapping[str, torch.Tensor], boxes: Sequence[torch.Tensor]) -> DensePoseOutput:
        """Outputs for all boxes of all images, concatenated in image order; ``boxes``: one (R_n, 4) per image."""
        maps = [features[name] for name in self.in_features]
        if self.decoder is not None:
            regional = self.decode_regions and not torch.is_grad_enabled() and self.decoder.supports_regions()
            maps = [self._decode_windows(maps, boxes) if regional else self.decoder(maps)]
        pooled = self.pooler(maps, [b.detach() for b in boxes])
        output: DensePoseOutput = self.predictor(self.head(pooled))
        return output

    def _decode_windows(self, maps: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The decoder's output map where the pooler reads it (zeros elsewhere): only the windows around each
        image's boxes (``merge_windows`` of ``RoIPooler.footprint``) are computed, by ``Decoder.forward_region``.

        The decoder runs at stride 4 over the whole image; the DensePose branch reads it inside the detections
        only, which often cover a small part of the image.
        """
        assert self.decoder is not None
        num = maps[0].shape[0]
        height, width = self.decoder.output_size(maps)
        layout = torch.channels_last if self.pooler.gather else torch.contiguous_format
        out = maps[0].new_zeros((num, self.decoder.out_channels, height, width)).contiguous(memory_format=layout)
        for n, image_boxes in enumerate(boxes):
            if len(image_boxes) == 0:
                continue
            windows = [tuple(w) for w in self.pooler.footprint(image_boxes, height, width).tolist()]
            level_maps = [m[n : n + 1] for m in maps]
            for r0, r1, c0, c1 in merge_windows(windows):
                out[n : n + 1, :, r0:r1, c0:c1] = self.decoder.forward_region(level_maps, (r0, r1), (c0, c1))
        return out

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
        generator: torch.Generator | None = None,
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
