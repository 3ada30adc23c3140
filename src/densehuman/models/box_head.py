"""The box branch of Faster R-CNN (detectron2's ``StandardROIHeads`` box part, ``FastRCNNConvFCHead`` and
``FastRCNNOutputLayers``): proposal sampling, multi-level RoIAlign, 2 FC layers, class scores and class-specific
box deltas, losses and inference.

Classes follow detectron2: foreground classes are 0..K-1 and background is K (the last ``cls_score`` output).
Parameter names are detectron2's ``fc1``/``fc2`` (under ``head``; detectron2 ``roi_heads.box_head``) and
``cls_score``/``bbox_pred`` (under ``predictor``; detectron2 ``roi_heads.box_predictor``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import batched_nms

from densehuman.models.anchors import (
    Box2BoxTransform,
    Matcher,
    box_regression_loss,
    clip_boxes,
    match_boxes,
    nonempty_boxes,
    subsample_labels,
)
from densehuman.models.instances import Targets
from densehuman.models.necks import c2_xavier_fill
from densehuman.models.poolers import RoIPooler


class FastRCNNConvFCHead(nn.Module):
    """``num_conv`` x [3x3 conv ``conv_dim`` + ReLU] (``conv1``, ``conv2``, ...; MSRA init), then flatten and
    ``num_fc`` Linear + ReLU layers ``fc1``, ``fc2``, ... (detectron2's head of the same name). DensePose R-CNN uses
    2 FCs; "Making DensePose fast and light" 2 convolutions and no FC ("conv box head")."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        fc_dim: int = 1024,
        num_fc: int = 2,
        num_conv: int = 0,
        conv_dim: int = 256,
    ) -> None:
        super().__init__()
        self.convs: list[nn.Conv2d] = []
        channels = in_channels
        for k in range(num_conv):
            conv = nn.Conv2d(channels, conv_dim, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)
            self.add_module(f"conv{k + 1}", conv)
            self.convs.append(conv)
            channels = conv_dim
        self.fcs: list[nn.Linear] = []
        dim = channels * resolution * resolution
        for k in range(num_fc):
            fc = nn.Linear(dim, fc_dim)
            c2_xavier_fill(fc)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            dim = fc_dim
        self.out_dim = dim
        self.in_channels = channels
        self.resolution = resolution
        # fc1 reads (S, S, C)-ordered inputs (``read_channels_last``): a channels-last batch flattens without a copy
        self.channels_last_input = False

    @torch.no_grad()
    def read_channels_last(self) -> None:
        """Reorder fc1's input weights from detectron2's (C, S, S) flattening to (S, S, C), so that channels-last
        pooled features flatten as a view (inference: the state dict no longer has detectron2's layout)."""
        if self.channels_last_input or not self.fcs:
            return
        fc1, c, s = self.fcs[0], self.in_channels, self.resolution
        reordered = fc1.weight.view(-1, c, s, s).permute(0, 2, 3, 1).reshape(fc1.weight.shape)
        fc1.weight = nn.Parameter(reordered.contiguous(), requires_grad=fc1.weight.requires_grad)
        self.channels_last_input = True

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.relu(conv(x), inplace=True)
        # with the reordered fc1 the same features flatten in (S, S, C) order, whatever their memory layout
        x = x.permute(0, 2, 3, 1).flatten(1) if self.channels_last_input else x.flatten(1)
        for fc in self.fcs:
            x = F.relu(fc(x), inplace=True)
        return x


class FastRCNNOutputLayers(nn.Module):
    """``cls_score`` (K + 1 logits, background last) and ``bbox_pred`` (K * 4 class-specific deltas, or 4)."""

    def __init__(self, in_dim: int, num_classes: int, class_agnostic: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(in_dim, 4 if class_agnostic else 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.constant_(self.cls_score.bias, 0)
        nn.init.constant_(self.bbox_pred.bias, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


@dataclass(frozen=True)
class SampledProposals:
    """Per image: the proposals sampled for the box losses and what they are matched to."""

    boxes: list[Tensor]  # (S, 4) proposal boxes, foreground first
    classes: list[Tensor]  # (S,) int64 GT class 0..K-1, or K (background)
    matched: list[Tensor]  # (S,) int64 index of the matched GT box (0 when the image has no usable GT)
    gt_boxes: list[Tensor]  # (S, 4) the matched GT boxes (the proposal itself when the image has no usable GT)


def sample_proposals(
    proposals: Sequence[Tensor],
    targets: Sequence[Targets],
    matcher: Matcher,
    num_classes: int,
    batch_size_per_image: int = 512,
    positive_fraction: float = 0.25,
    append_gt: bool = True,
    generator: torch.Generator | None = None,
) -> SampledProposals:
    """detectron2's ``label_and_sample_proposals``: append the (non-crowd) GT boxes to the proposals, match by IoU,
    sample up to ``batch_size_per_image`` of which at most ``positive_fraction`` foreground."""
    out_boxes, out_classes, out_matched, out_gt = [], [], [], []
    for boxes, target in zip(proposals, targets, strict=True):
        gt_boxes = target.boxes.to(boxes)
        usable = torch.ones(len(gt_boxes), dtype=torch.bool, device=boxes.device)
        if target.crowd is not None:
            usable = ~target.crowd.to(boxes.device)
        if append_gt:
            boxes = torch.cat([boxes, gt_boxes[usable]])
        matches, labels = match_boxes(matcher, gt_boxes, boxes, None if target.crowd is None else ~usable)
        has_gt = bool(usable.any())
        if has_gt:
            classes = target.classes.to(boxes.device)[matches]
            classes = torch.where(labels == 0, torch.full_like(classes, num_classes), classes)
        else:
            classes = torch.full_like(matches, num_classes)
        classes = torch.where(labels == -1, torch.full_like(classes, -1), classes)
        fg, bg = subsample_labels(classes, batch_size_per_image, positive_fraction, num_classes, generator)
        keep = torch.cat([fg, bg])
        out_boxes.append(boxes[keep])
        out_classes.append(classes[keep])
        out_matched.append(matches[keep])
        out_gt.append(gt_boxes[matches[keep]] if has_gt else boxes[keep])
    return SampledProposals(out_boxes, out_classes, out_matched, out_gt)


def select_foreground(sampled: SampledProposals, num_classes: int) -> tuple[list[Tensor], list[Tensor]]:
    """detectron2's ``select_foreground_proposals``: per image the foreground boxes (K, 4) and their GT index (K,)."""
    boxes, matched = [], []
    for b, c, m in zip(sampled.boxes, sampled.classes, sampled.matched, strict=True):
        fg = (c != -1) & (c != num_classes)
        boxes.append(b[fg])
        matched.append(m[fg])
    return boxes, matched


def fast_rcnn_inference_single_image(
    boxes: Tensor,
    probs: Tensor,
    image_size: tuple[int, int],
    score_threshold: float,
    nms_threshold: float,
    detections_per_image: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """detectron2's ``fast_rcnn_inference_single_image`` (+ the empty-box filter of ``detector_postprocess``).

    Args:
        boxes: (R, K * 4) or (R, 4) decoded boxes.
        probs: (R, K + 1) softmax scores, background last.

    Returns:
        boxes (D, 4), scores (D,) in decreasing order and classes (D,) int64, D <= ``detections_per_image``.
    """
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probs).all(dim=1)
    if not bool(valid.all()):
        boxes, probs = boxes[valid], probs[valid]
    scores = probs[:, :-1]
    num_reg_classes = boxes.shape[1] // 4
    boxes = clip_boxes(boxes.reshape(-1, 4), image_size).view(-1, num_reg_classes, 4)
    keep_mask = scores > score_threshold
    inds = torch.nonzero(keep_mask)  # (D, 2): proposal, class
    boxes = boxes[inds[:, 0], 0] if num_reg_classes == 1 else boxes[keep_mask]
    scores = scores[keep_mask]
    keep = batched_nms(boxes, scores, inds[:, 1], nms_threshold)
    if detections_per_image >= 0:
        keep = keep[:detections_per_image]
    boxes, scores, classes = boxes[keep], scores[keep], inds[keep, 1]
    nonempty = nonempty_boxes(boxes)
    return boxes[nonempty], scores[nonempty], classes[nonempty]


def _cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    if labels.numel() == 0:  # detectron2's cross_entropy: a zero that keeps the graph
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, reduction="mean")


class BoxHead(nn.Module):
    """Pool proposals from the pyramid, classify them and refine their boxes.

    Args:
        in_features / in_channels / strides: the pyramid levels pooled from (p2..p5), their channels and strides.
        num_classes: foreground classes K (1: person).
        pooler_resolution / sampling_ratio / aligned: RoIAlign settings. The defaults are the DensePose model
            zoo's (``POOLER_TYPE: ROIAlign``, ``POOLER_SAMPLING_RATIO: 2``), not detectron2's ROIAlignV2 / 0.
        fg_iou_threshold: proposals with IoU >= this with a GT are foreground.
        append_gt: add the GT boxes to the proposals in training.
        box_weights: :class:`Box2BoxTransform` weights (10, 10, 5, 5).
        score_threshold / nms_threshold / detections_per_image: inference.
        smooth_l1_beta: 0 gives L1.
    """

    def __init__(
        self,
        in_features: Sequence[str],
        in_channels: int,
        strides: Sequence[int],
        num_classes: int = 1,
        pooler_resolution: int = 7,
        sampling_ratio: int = 2,
        aligned: bool = False,
        fc_dim: int = 1024,
        num_fc: int = 2,
        num_conv: int = 0,
        conv_dim: int = 256,
        class_agnostic: bool = False,
        fg_iou_threshold: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        append_gt: bool = True,
        box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        detections_per_image: int = 100,
        smooth_l1_beta: float = 0.0,
        box_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if len(in_features) != len(strides):
            raise ValueError(f"got {len(in_features)} box-head features but {len(strides)} strides")
        self.in_features = tuple(in_features)
        self.num_classes = num_classes
        self.pooler = RoIPooler(pooler_resolution, [1.0 / s for s in strides], sampling_ratio, aligned)
        self.head = FastRCNNConvFCHead(in_channels, pooler_resolution, fc_dim, num_fc, num_conv, conv_dim)
        self.predictor = FastRCNNOutputLayers(self.head.out_dim, num_classes, class_agnostic)
        self.box_transform = Box2BoxTransform(box_weights)
        self.matcher = Matcher([fg_iou_threshold], [0, 1], allow_low_quality_matches=False)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.append_gt = append_gt
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.detections_per_image = detections_per_image
        self.smooth_l1_beta = smooth_l1_beta
        self.box_loss_weight = box_loss_weight

    def forward(self, features: Mapping[str, Tensor], boxes: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits (R, K + 1) and box deltas (R, K * 4) for the boxes of every image, concatenated."""
        pooled = self.pooler([features[f] for f in self.in_features], boxes)
        return self.predictor(self.head(pooled))

    def losses(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, Tensor], SampledProposals]:
        """``loss_cls`` (softmax CE, mean over samples) and ``loss_box_reg`` (smooth-L1 of the GT class's deltas
        on foreground, summed, divided by the number of samples), and the samples used."""
        sampled = sample_proposals(
            proposals,
            targets,
            self.matcher,
            self.num_classes,
            self.batch_size_per_image,
            self.positive_fraction,
            self.append_gt,
            generator,
        )
        logits, deltas = self(features, sampled.boxes)
        classes = torch.cat(sampled.classes)
        boxes = torch.cat(sampled.boxes)
        gt_boxes = torch.cat(sampled.gt_boxes)
        fg = torch.nonzero((classes >= 0) & (classes < self.num_classes), as_tuple=True)[0]
        # Class-specific regression: the deltas of each foreground sample's GT class.
        fg_deltas = deltas[fg] if deltas.shape[1] == 4 else deltas.view(-1, self.num_classes, 4)[fg, classes[fg]]
        target_deltas = self.box_transform.get_deltas(boxes[fg], gt_boxes[fg])
        box_loss = box_regression_loss(fg_deltas, target_deltas, self.smooth_l1_beta) / max(classes.numel(), 1)
        losses = {"loss_cls": _cross_entropy(logits, classes), "loss_box_reg": box_loss * self.box_loss_weight}
        return losses, sampled

    def predict(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
        score_threshold: float | None = None,
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per image: boxes (D, 4) clipped to its (h, w), scores (D,) decreasing, classes (D,)."""
        logits, deltas = self(features, proposals)
        all_boxes = self.box_transform.apply_deltas(deltas, torch.cat(list(proposals)))
        probs = F.softmax(logits.float(), dim=-1)
        counts = [len(p) for p in proposals]
        threshold = self.score_threshold if score_threshold is None else score_threshold
        return [
            fast_rcnn_inference_single_image(b, p, size, threshold, self.nms_threshold, self.detections_per_image)
            for b, p, size in zip(all_boxes.split(counts), probs.split(counts), image_sizes, strict=True)
        ]
