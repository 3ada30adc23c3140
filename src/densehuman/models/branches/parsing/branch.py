"""The parsing branch of Parsing R-CNN: RoI pooling (P2 only with PSS), the GCE head, the predictor, its losses
and its outputs.

Training (``losses``) follows ``rcnn/modeling/parsing_rcnn/loss.py``: the box head's sampled foreground proposals
(GT boxes included), only those matched (IoU >= ``fg_iou_threshold``) to a GT person with parsing labels, at most
``rois_per_image`` of them per image drawn at random (the batch decoupled from the box head's 512); targets are the
persons' label maps cropped at the rounded proposals and resized nearest (``targets.parsing_targets``); the loss is
the cross-entropy over every pixel of the grid, background included, times ``loss_weight`` (2.0). With no usable
proposal one dummy RoI keeps the graph (loss ``0 * logits.sum()``).

Boxes are xyxy in pixels of the network input; features are the neck's ``{name: (N, C, H, W)}`` maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.branches.parsing.predictor import ParsingPredictor
from densehuman.models.branches.parsing.targets import flip_logits, parsing_targets
from densehuman.models.instances import ParsingOutput, Targets
from densehuman.models.poolers import RoIPooler


def _matched_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area_a + area_b - inter).clamp(min=1e-12)


class ParsingBranch(nn.Module):
    """Features + boxes -> part logits per box (``forward``), their loss (``losses``), probabilities (``predict``).

    Args:
        in_features: the neck maps the pooler reads (``("p2",)`` with PSS: every box pooled from P2 whatever its
            size; else P2..P5 by the FPN level rule).
        pooler: one scale per entry of ``in_features`` (32 x 32 output with ERR).
        head: ``GCEHead`` (or any module (R, C, s, s) -> (R, D, s, s)).
        predictor: ``ParsingPredictor`` to the ``output_size`` grid.
        flip_permutation: (C,) the class each class becomes under a horizontal flip (flip test-time augmentation).
    """

    name = "parsing"

    def __init__(
        self,
        in_features: Sequence[str],
        pooler: RoIPooler,
        head: nn.Module,
        predictor: ParsingPredictor,
        flip_permutation: Sequence[int],
        loss_weight: float = 2.0,
        fg_iou_threshold: float = 0.5,
        rois_per_image: int = 16,
    ) -> None:
        super().__init__()
        self.in_features = tuple(in_features)
        if len(pooler.scales) != len(self.in_features):
            raise ValueError(f"the pooler needs {len(self.in_features)} scale(s), got {pooler.scales}")
        if len(flip_permutation) != predictor.num_classes:
            raise ValueError(f"flip permutation of {len(flip_permutation)} classes, predictor {predictor.num_classes}")
        if rois_per_image < 1:
            raise ValueError(f"rois_per_image must be at least 1, got {rois_per_image}")
        self.pooler = pooler
        self.head = head
        self.predictor = predictor
        self.loss_weight = loss_weight
        self.fg_iou_threshold = fg_iou_threshold
        self.rois_per_image = rois_per_image
        self.register_buffer("flip_permutation", torch.as_tensor(list(flip_permutation), dtype=torch.int64), False)
        self.flip_permutation: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.predictor.num_classes

    def forward(self, features: Mapping[str, torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """(R, C, S, S) logits of all boxes of all images (image order); ``boxes``: one (R_n, 4) per image."""
        pooled = self.pooler([features[f] for f in self.in_features], [b.detach() for b in boxes])
        logits: torch.Tensor = self.predictor(self.head(pooled))
        return logits

    def predict(
        self,
        features: Mapping[str, torch.Tensor],
        boxes: Sequence[torch.Tensor],
        flipped: Mapping[str, torch.Tensor] | None = None,
        widths: Sequence[int] | None = None,
    ) -> list[ParsingOutput]:
        """Probabilities per image for its boxes. With ``flipped`` (the features of the horizontally flipped images,
        of widths ``widths``) the probabilities of the flipped boxes, flipped back with left and right swapped, are
        averaged in (``TEST.PARSING_AUG``, ``SOFT_AVG``)."""
        probs = F.softmax(self(features, boxes), dim=1)
        if flipped is not None:
            if widths is None:
                raise ValueError("flip test-time augmentation needs the image widths")
            mirrored = []
            for b, width in zip(boxes, widths, strict=True):
                m = b.clone()
                m[:, 0], m[:, 2] = width - b[:, 2], width - b[:, 0]
                mirrored.append(m)
            flipped_probs = F.softmax(self(flipped, mirrored), dim=1)
            probs = (probs + flip_logits(flipped_probs, self.flip_permutation)) / 2
        out, start = [], 0
        for b in boxes:
            out.append(ParsingOutput(probs[start : start + len(b)]))
            start += len(b)
        return out

    def losses(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        matched: Sequence[torch.Tensor],
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"loss_parsing": ...}`` of the foreground ``proposals`` (K_n, 4) of each image, ``matched`` (K_n,) the
        index of each one's GT box in ``targets[n]``."""
        if not (len(proposals) == len(matched) == len(targets)):
            raise ValueError(f"got {len(proposals)} proposal sets, {len(matched)} matches and {len(targets)} targets")
        kept_boxes: list[torch.Tensor] = []
        kept_labels: list[torch.Tensor] = []
        for boxes, idx, target in zip(proposals, matched, targets, strict=True):
            keep = self._keep(boxes, idx, target, generator)
            kept_boxes.append(boxes.detach()[keep])
            if keep.numel() and target.parsing is not None:
                kept_labels.append(target.parsing.labels[idx[keep].long()])
        size = self.predictor.output_size
        if sum(len(b) for b in kept_boxes) == 0:
            device = proposals[0].device if proposals else self.flip_permutation.device
            dummy = [torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=device)] + [b[:0] for b in kept_boxes[1:]]
            return {"loss_parsing": self(features, dummy).sum() * 0.0}
        logits = self(features, kept_boxes)
        gt = torch.cat(
            [
                parsing_targets(labels, boxes, size)
                for labels, boxes in zip(kept_labels, [b for b in kept_boxes if len(b)], strict=True)
            ]
        )
        if int(gt.max()) >= self.num_classes:
            raise ValueError(f"parsing label {int(gt.max())} is not one of the {self.num_classes} classes")
        return {"loss_parsing": F.cross_entropy(logits, gt) * self.loss_weight}

    @torch.no_grad()
    def _keep(
        self, boxes: torch.Tensor, idx: torch.Tensor, target: Targets, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Indices of the proposals trained on: matched to a GT with parsing labels, at most ``rois_per_image``."""
        if len(boxes) != len(idx):
            raise ValueError(f"{len(boxes)} proposals but {len(idx)} matched indices")
        if target.parsing is None or len(boxes) == 0:
            return torch.zeros(0, dtype=torch.int64, device=boxes.device)
        idx = idx.to(boxes.device).long()
        has = target.parsing.has.to(boxes.device)[idx]
        iou = _matched_iou(boxes.to(torch.float32), target.boxes.to(boxes.device, torch.float32)[idx])
        usable = torch.nonzero(has & (iou >= self.fg_iou_threshold)).flatten()
        if len(usable) > self.rois_per_image:
            order = torch.randperm(len(usable), generator=generator)[: self.rois_per_image].to(usable.device)
            usable = usable[order].sort().values
        return usable
