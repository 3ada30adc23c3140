"""Box geometry shared by the RPN and the box head: anchors, box-delta coding, IoU matching, balanced sampling.

All boxes are ``(x0, y0, x1, y1)`` in pixels of the padded network input. The functions follow detectron2's
``anchor_generator.py``, ``box_regression.py``, ``matcher.py`` and ``sampling.py`` so that checkpoints trained
with detectron2 behave the same here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# detectron2's _DEFAULT_SCALE_CLAMP: the largest log-scale a box delta may apply (boxes grow at most 1000/16 x)
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _per_level(params: Sequence[Sequence[float]], num_levels: int, name: str) -> list[tuple[float, ...]]:
    """detectron2's ``_broadcast_params``: one sequence per level, or one sequence shared by all levels."""
    if len(params) == 1:
        return [tuple(params[0])] * num_levels
    if len(params) != num_levels:
        raise ValueError(f"{name} has {len(params)} entries but there are {num_levels} feature levels")
    return [tuple(p) for p in params]


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Anchors centred at (0, 0), sizes outer and aspect ratios (h / w) inner, (len(sizes) * len(ratios), 4).

    detectron2's formula without Detectron1's rounding: ``w = sqrt(size**2 / ratio)``, ``h = ratio * w``.
    """
    anchors = []
    for size in sizes:
        area = size**2.0
        for ratio in aspect_ratios:
            w = math.sqrt(area / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors, dtype=torch.float32)


class DefaultAnchorGenerator(nn.Module):
    """detectron2's ``DefaultAnchorGenerator``: cell anchors shifted over every feature-map location.

    Args:
        sizes: anchor sizes (square root of the area, input pixels) per level, or one sequence for all levels.
        aspect_ratios: height / width per level, or one sequence for all levels.
        strides: stride of each feature level, in input pixels.
        offset: anchor centre offset in units of the stride (detectron2 default 0.5; DensePose configs use 0.0).
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[float]] = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: Sequence[Sequence[float]] = ((0.5, 1.0, 2.0),),
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset must be in [0, 1), got {offset}")
        self.strides = tuple(int(s) for s in strides)
        self.offset = float(offset)
        level_sizes = _per_level(sizes, len(self.strides), "sizes")
        level_ratios = _per_level(aspect_ratios, len(self.strides), "aspect_ratios")
        self._num_levels = len(self.strides)
        for level, (s, r) in enumerate(zip(level_sizes, level_ratios, strict=True)):
            # Not persistent: detectron2 checkpoints carry no anchors.
            self.register_buffer(f"cell_anchors_{level}", cell_anchors(s, r), persistent=False)

    def level_cell_anchors(self, level: int) -> Tensor:
        """The (A, 4) cell anchors of one level."""
        buffer = getattr(self, f"cell_anchors_{level}")
        assert isinstance(buffer, Tensor)
        return buffer

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per location, for each level."""
        return [self.level_cell_anchors(i).shape[0] for i in range(self._num_levels)]

    def grid_anchors(self, grid_sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """Anchors of each level for feature maps of the given (H, W): (H * W * A, 4), location-major."""
        if len(grid_sizes) != self._num_levels:
            raise ValueError(f"expected {self._num_levels} feature maps, got {len(grid_sizes)}")
        anchors = []
        for level, ((height, width), stride) in enumerate(zip(grid_sizes, self.strides, strict=True)):
            base = self.level_cell_anchors(level)
            start = self.offset * stride
            shifts_x = torch.arange(start, width * stride, step=stride, dtype=torch.float32, device=base.device)
            shifts_y = torch.arange(start, height * stride, step=stride, dtype=torch.float32, device=base.device)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Anchors for a list of (B, C, H, W) feature maps, one (H * W * A, 4) tensor per level."""
        return self.grid_anchors([(int(f.shape[-2]), int(f.shape[-1])) for f in features])


class Box2BoxTransform:
    """detectron2's box coder: deltas ``(dx, dy, dw, dh)`` scaled by ``weights`` between two boxes.

    RPN uses weights (1, 1, 1, 1), the box head (10, 10, 5, 5). ``dw``, ``dh`` are clamped at ``scale_clamp``
    before ``exp`` when decoding.
    """

    def __init__(self, weights: tuple[float, float, float, float], scale_clamp: float = DEFAULT_SCALE_CLAMP) -> None:
        self.weights = weights
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """Deltas (N, 4) that turn ``src_boxes`` (N, 4) into ``target_boxes`` (N, 4)."""
        src_widths = src_boxes[:, 2] - src_boxes[:, 0]
        src_heights = src_boxes[:, 3] - src_boxes[:, 1]
        src_ctr_x = src_boxes[:, 0] + 0.5 * src_widths
        src_ctr_y = src_boxes[:, 1] + 0.5 * src_heights
        target_widths = target_boxes[:, 2] - target_boxes[:, 0]
        target_heights = target_boxes[:, 3] - target_boxes[:, 1]
        target_ctr_x = target_boxes[:, 0] + 0.5 * target_widths
        target_ctr_y = target_boxes[:, 1] + 0.5 * target_heights
        wx, wy, ww, wh = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def apply_deltas(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Apply deltas (N, k * 4) to boxes (N, 4); returns (N, k * 4) float32 boxes (k classes)."""
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x0 = pred_ctr_x - 0.5 * pred_w
        y0 = pred_ctr_y - 0.5 * pred_h
        x1 = pred_ctr_x + 0.5 * pred_w
        y1 = pred_ctr_y + 0.5 * pred_h
        return torch.stack((x0, y0, x1, y1), dim=-1).reshape(deltas.shape)


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clamp (N, 4) xyxy boxes to an image of size (h, w) (detectron2 ``Boxes.clip``)."""
    height, width = image_size
    x0 = boxes[:, 0].clamp(min=0, max=width)
    y0 = boxes[:, 1].clamp(min=0, max=height)
    x1 = boxes[:, 2].clamp(min=0, max=width)
    y1 = boxes[:, 3].clamp(min=0, max=height)
    return torch.stack((x0, y0, x1, y1), dim=-1)


def nonempty_boxes(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    """(N,) bool: width and height strictly above ``threshold`` (detectron2 ``Boxes.nonempty``)."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def box_regression_loss(pred_deltas: Tensor, target_deltas: Tensor, beta: float) -> Tensor:
    """Summed smooth-L1 (fvcore's): L1 when ``beta`` < 1e-5, as detectron2's ``SMOOTH_L1_BETA: 0.0``."""
    if beta < 1e-5:
        return (pred_deltas - target_deltas).abs().sum()
    diff = (pred_deltas - target_deltas).abs()
    return torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta).sum()


def pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU (N, M) of boxes1 (N, 4) and boxes2 (M, 4); 0 where the boxes do not intersect (no NaN for empty boxes)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    inter = _pairwise_intersection(boxes1, boxes2)
    return torch.where(inter > 0, inter / (area1[:, None] + area2 - inter), torch.zeros_like(inter))


def pairwise_ioa(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over the area of boxes2: (N, M)."""
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    inter = _pairwise_intersection(boxes1, boxes2)
    return torch.where(inter > 0, inter / area2, torch.zeros_like(inter))


def _pairwise_intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    width_height = torch.min(boxes1[:, None, 2:], boxes2[:, 2:]) - torch.max(boxes1[:, None, :2], boxes2[:, :2])
    width_height.clamp_(min=0)
    return width_height.prod(dim=2)


class Matcher:
    """detectron2's ``Matcher``: label every prediction by its best IoU with the ground truth.

    ``thresholds`` (sorted) split IoU into ``len(thresholds) + 1`` intervals labelled by ``labels`` (1 foreground,
    0 background, -1 ignore). With ``allow_low_quality_matches`` each GT's highest-IoU predictions (all ties) become
    foreground even below the top threshold; their matched GT stays the argmax over GT.
    """

    def __init__(
        self, thresholds: Sequence[float], labels: Sequence[int], allow_low_quality_matches: bool = False
    ) -> None:
        if len(labels) != len(thresholds) + 1:
            raise ValueError(f"need {len(thresholds) + 1} labels for thresholds {thresholds}, got {labels}")
        if list(thresholds) != sorted(thresholds):
            raise ValueError(f"thresholds must be sorted, got {thresholds}")
        self.thresholds = [-math.inf, *thresholds, math.inf]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> tuple[Tensor, Tensor]:
        """IoU (M GT, N predictions) -> matched GT index (N,) int64 and label (N,) int8."""
        num_pred = match_quality_matrix.shape[1]
        device = match_quality_matrix.device
        if match_quality_matrix.numel() == 0:
            return (
                torch.zeros(num_pred, dtype=torch.int64, device=device),
                torch.full((num_pred,), self.labels[0], dtype=torch.int8, device=device),
            )
        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = torch.ones(num_pred, dtype=torch.int8, device=device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:], strict=True):
            match_labels[(matched_vals >= low) & (matched_vals < high)] = label
        if self.allow_low_quality_matches:
            highest_per_gt = match_quality_matrix.max(dim=1).values
            _, pred_idx = torch.nonzero(match_quality_matrix == highest_per_gt[:, None], as_tuple=True)
            match_labels[pred_idx] = 1
        return matches, match_labels


def match_boxes(
    matcher: Matcher,
    gt_boxes: Tensor,
    boxes: Tensor,
    crowd: Tensor | None = None,
    crowd_ioa_threshold: float = 0.7,
) -> tuple[Tensor, Tensor]:
    """Match ``boxes`` (N, 4) to ``gt_boxes`` (M, 4); returns GT index (N,) into all M boxes and label (N,) int8.

    Crowd GT boxes (``crowd`` (M,) bool) are never matched. A box the matcher calls background (label 0) that lies
    inside a crowd box (intersection over its own area > ``crowd_ioa_threshold``, Detectron1's crowd filter) is
    ignored (label -1). detectron2 drops crowd annotations instead; without crowd boxes both agree.
    """
    if crowd is None or not bool(crowd.any()):
        return matcher(pairwise_iou(gt_boxes, boxes))
    keep = torch.nonzero(~crowd, as_tuple=True)[0]
    matches, labels = matcher(pairwise_iou(gt_boxes[keep], boxes))
    if keep.numel() > 0:
        matches = keep[matches]
    in_crowd = pairwise_ioa(gt_boxes[crowd], boxes).max(dim=0).values > crowd_ioa_threshold
    labels = torch.where((labels == 0) & in_crowd, torch.full_like(labels, -1), labels)
    return matches, labels


def _randperm(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def subsample_labels(
    labels: Tensor,
    num_samples: int,
    positive_fraction: float,
    bg_label: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """detectron2's ``subsample_labels``: random positive (label not -1 and not ``bg_label``) and negative indices.

    At most ``int(num_samples * positive_fraction)`` positives, negatives fill up to ``num_samples``.
    ``generator`` (on any device) makes the draw reproducible; None uses torch's global generator as detectron2.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    pos_idx = positive[_randperm(positive.numel(), positive.device, generator)[:num_pos]]
    neg_idx = negative[_randperm(negative.numel(), negative.device, generator)[:num_neg]]
    return pos_idx, neg_idx
