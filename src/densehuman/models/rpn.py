"""Region proposal network (detectron2's ``RPN`` + ``StandardRPNHead`` + ``find_top_rpn_proposals``).

Parameter names are detectron2's: ``rpn_head.conv``, ``rpn_head.objectness_logits``, ``rpn_head.anchor_deltas``
(detectron2 prefix ``proposal_generator.``). Anchors are not saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import batched_nms

from densehuman.models.anchors import (
    Box2BoxTransform,
    DefaultAnchorGenerator,
    Matcher,
    box_regression_loss,
    clip_boxes,
    match_boxes,
    nonempty_boxes,
    subsample_labels,
)
from densehuman.models.instances import Targets


class StandardRPNHead(nn.Module):
    """3x3 conv + ReLU shared over levels, then 1x1 objectness logits (A) and 1x1 anchor deltas (A * 4)."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.objectness_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        for layer in (self.conv, self.objectness_logits, self.anchor_deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)  # type: ignore[arg-type]

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: logits (B, A, H, W) and deltas (B, A * 4, H, W)."""
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x), inplace=True)
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


def find_top_rpn_proposals(
    proposals: Sequence[Tensor],
    logits: Sequence[Tensor],
    image_sizes: Sequence[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> tuple[list[Tensor], list[Tensor]]:
    """detectron2's ``find_top_rpn_proposals``: per level top-k by logit, clip, drop small boxes, NMS within each
    level (batched over levels), keep the ``post_nms_topk`` best per image.

    Args:
        proposals: per level (B, Hi * Wi * A, 4) decoded boxes.
        logits: per level (B, Hi * Wi * A) objectness logits.
        image_sizes: (h, w) of each image before padding; boxes are clipped to it.

    Returns:
        per image, boxes (R, 4) and their logits (R,), sorted by decreasing logit.
    """
    device = proposals[0].device
    num_images = len(image_sizes)
    batch_idx = torch.arange(num_images, device=device)
    topk_scores, topk_boxes, level_ids = [], [], []
    for level, (boxes_l, logits_l) in enumerate(zip(proposals, logits, strict=True)):
        k = min(pre_nms_topk, logits_l.shape[1])
        scores_l, idx = logits_l.topk(k, dim=1)
        topk_scores.append(scores_l)
        topk_boxes.append(boxes_l[batch_idx[:, None], idx])
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    scores_all = torch.cat(topk_scores, dim=1)
    boxes_all = torch.cat(topk_boxes, dim=1)
    levels_all = torch.cat(level_ids, dim=0)

    out_boxes, out_scores = [], []
    for n, (height, width) in enumerate(image_sizes):
        boxes, scores, levels = boxes_all[n], scores_all[n], levels_all
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        if not bool(valid.all()):
            if training:
                raise FloatingPointError("RPN predicted boxes or scores contain Inf/NaN: training has diverged")
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes = clip_boxes(boxes, (height, width))
        keep = nonempty_boxes(boxes, min_box_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes.float(), scores, levels, nms_thresh)[:post_nms_topk]
        out_boxes.append(boxes[keep])
        out_scores.append(scores[keep])
    return out_boxes, out_scores


class RPN(nn.Module):
    """Proposals from anchors on every pyramid level, and the RPN losses in training.

    Args:
        in_features: pyramid levels used, e.g. ``("p2", ..., "p6")``.
        in_channels: channels of those levels (equal on an FPN).
        strides: stride of each level in ``in_features``.
        anchor_sizes / aspect_ratios / anchor_offset: see :class:`DefaultAnchorGenerator`.
        iou_thresholds: anchors under the first are background, at or over the second foreground, between ignored;
            each GT's best anchors are foreground too (``allow_low_quality_matches``).
        batch_size_per_image / positive_fraction: anchors sampled per image for the losses.
        pre_nms_topk / post_nms_topk: (train, test) per level before NMS and per image after.
        nms_thresh / min_box_size: NMS IoU and the smallest kept side (pixels).
        smooth_l1_beta: 0 gives L1.
        loss_weight: scales both ``loss_rpn_cls`` and ``loss_rpn_loc``.
    """

    def __init__(
        self,
        in_features: Sequence[str],
        in_channels: int,
        strides: Sequence[int],
        anchor_sizes: Sequence[Sequence[float]] = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: Sequence[Sequence[float]] = ((0.5, 1.0, 2.0),),
        anchor_offset: float = 0.0,
        iou_thresholds: tuple[float, float] = (0.3, 0.7),
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk: tuple[int, int] = (2000, 1000),
        post_nms_topk: tuple[int, int] = (1000, 1000),
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        smooth_l1_beta: float = 0.0,
        loss_weight: float = 1.0,
        box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        if len(in_features) != len(strides):
            raise ValueError(f"got {len(in_features)} RPN features but {len(strides)} strides")
        self.in_features = tuple(in_features)
        self.anchor_generator = DefaultAnchorGenerator(anchor_sizes, aspect_ratios, strides, anchor_offset)
        num_anchors = set(self.anchor_generator.num_anchors)
        if len(num_anchors) != 1:
            raise ValueError(f"every level needs the same number of anchors per location, got {num_anchors}")
        self.rpn_head = StandardRPNHead(in_channels, num_anchors.pop())
        self.box_transform = Box2BoxTransform(box_weights)
        self.anchor_matcher = Matcher(iou_thresholds, [0, -1, 1], allow_low_quality_matches=True)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = pre_nms_topk
        self.post_nms_topk = post_nms_topk
        self.nms_thresh = nms_thresh
        self.min_box_size = min_box_size
        self.smooth_l1_beta = smooth_l1_beta
        self.loss_weight = loss_weight

    def forward(
        self,
        features: Mapping[str, Tensor],
        image_sizes: Sequence[tuple[int, int]],
        targets: Sequence[Targets] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals per image ((R, 4) boxes, no gradient) and, when ``targets`` are given, the losses.

        With targets the training top-k settings apply, without them the test ones.
        """
        maps = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(maps)
        logits_maps, deltas_maps = self.rpn_head(maps)
        # (B, A, H, W) -> (B, H * W * A) and (B, A * 4, H, W) -> (B, H * W * A, 4): anchors' location-major order
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits_maps]
        deltas = [
            x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
            for x in deltas_maps
        ]
        training = targets is not None
        losses: dict[str, Tensor] = {}
        if targets is not None:
            losses = self.losses(anchors, logits, deltas, targets, generator)
        with torch.no_grad():
            proposals = self.decode_proposals(anchors, deltas)
            boxes, _ = find_top_rpn_proposals(
                proposals,
                [x.detach() for x in logits],
                image_sizes,
                self.nms_thresh,
                self.pre_nms_topk[0 if training else 1],
                self.post_nms_topk[0 if training else 1],
                self.min_box_size,
                training,
            )
        return boxes, losses

    def decode_proposals(self, anchors: Sequence[Tensor], deltas: Sequence[Tensor]) -> list[Tensor]:
        """Per level (B, Hi * Wi * A, 4) boxes from anchors (Hi * Wi * A, 4) and deltas (B, Hi * Wi * A, 4)."""
        out = []
        for anchors_l, deltas_l in zip(anchors, deltas, strict=True):
            batch = deltas_l.shape[0]
            boxes = self.box_transform.apply_deltas(
                deltas_l.reshape(-1, 4), anchors_l.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 4)
            )
            out.append(boxes.view(batch, -1, 4))
        return out

    def label_anchors(
        self, anchors: Tensor, targets: Sequence[Targets], generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Sampled labels (B, N) in {1, 0, -1 (not sampled)} and matched GT boxes (B, N, 4) for all anchors (N, 4)."""
        labels, matched_boxes = [], []
        for target in targets:
            gt_boxes = target.boxes.to(anchors)
            matches, match_labels = match_boxes(self.anchor_matcher, gt_boxes, anchors, target.crowd)
            label = match_labels.to(torch.int64)
            pos, neg = subsample_labels(label, self.batch_size_per_image, self.positive_fraction, 0, generator)
            label = torch.full_like(label, -1)
            label[pos] = 1
            label[neg] = 0
            labels.append(label)
            matched_boxes.append(gt_boxes[matches] if gt_boxes.shape[0] > 0 else torch.zeros_like(anchors))
        return torch.stack(labels), torch.stack(matched_boxes)

    def losses(
        self,
        anchors: Sequence[Tensor],
        logits: Sequence[Tensor],
        deltas: Sequence[Tensor],
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """``loss_rpn_cls`` (BCE over sampled anchors) and ``loss_rpn_loc`` (smooth-L1 over positive anchors), both
        summed and divided by ``batch_size_per_image * B`` as detectron2 does."""
        all_anchors = torch.cat(list(anchors), dim=0)
        labels, matched_boxes = self.label_anchors(all_anchors, targets, generator)
        pred_logits = torch.cat(list(logits), dim=1)
        pred_deltas = torch.cat(list(deltas), dim=1)
        pos = labels == 1
        # Deltas only where positive: anchors matched to nothing would give log(0).
        pos_img, pos_anchor = torch.nonzero(pos, as_tuple=True)
        target_deltas = self.box_transform.get_deltas(all_anchors[pos_anchor], matched_boxes[pos_img, pos_anchor])
        loc_loss = box_regression_loss(pred_deltas[pos], target_deltas, self.smooth_l1_beta)
        valid = labels >= 0
        cls_loss = F.binary_cross_entropy_with_logits(
            pred_logits[valid], labels[valid].to(pred_logits.dtype), reduction="sum"
        )
        normalizer = self.batch_size_per_image * len(targets)
        return {
            "loss_rpn_cls": cls_loss / normalizer * self.loss_weight,
            "loss_rpn_loc": loc_loss / normalizer * self.loss_weight,
        }
