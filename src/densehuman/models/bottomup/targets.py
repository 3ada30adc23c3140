"""Training targets of OpenPose BODY_135: confidence maps, part affinity fields (PAFs) and their loss weights.

This is openpose_caffe_train's ``oPDataTransformer.cpp`` (``generateLabelMap``, ``putGaussianMaps`` and
``putVectorMaps``) with the BODY_135 tables of ``poseModel.cpp``, vectorised with NumPy. The section numbers below
refer to the reference notes ``wholebody.md``.

Channels (§1.2, §2). There are 135 confidence maps in ``BODY135_KEYPOINT_NAMES`` order and no background channel,
because the BODY_135 part mapping has 135 entries and ``addBkgChannel`` is false. There are 304 PAF channels:
pair ``i`` of ``BODY135_PAF_PAIRS`` is channel ``2i`` (x) and ``2i + 1`` (y). The Caffe label blob holds the PAFs
first and the maps second; the network output has the maps first. The two are kept as separate arrays here.

Coordinates are input-image pixels, and integer coordinates are pixel centres (the C++ convention).

* Confidence maps: grid cell ``g`` samples pixel ``g * stride + stride / 2 - 0.5``, so cell 0 samples 3.5 px at
  stride 8. The value is ``exp(-d^2 / (2 sigma^2))`` where ``d^2 / (2 sigma^2) <= 4.6052`` (ln 100, a 1 % cut) and
  0 elsewhere. People are merged with the maximum. sigma is 7 px for the 25 body and foot points and
  ``7 * 5.75 / 7 = 5.75`` px for the 110 hand and face points (``SIGMA_RATIO``).
* PAFs: the end points are divided by the stride and cell ``g`` is compared with them directly. This sample point
  is ``g * stride`` px, which is ``stride / 2 - 0.5`` px away from the point the confidence maps use; the C++ has
  the same offset. A cell is on the limb when it is inside the box ``[round(min - 1), round(max + 1))`` (``round``
  sends halves away from zero, as ``std::round``; the box is clipped to the grid) and its distance to the limb's
  line is at most 1 cell. On-limb cells hold the unit vector from A to
  B. Where limbs of several people overlap, the cell holds the mean of their vectors (a running average in the C++).
  A limb is drawn only when both ends are labeled, and a limb whose ends coincide is skipped (the C++ NaN check).

Weights (the per-channel masks of the masked L2 loss, §2 "Training recipe"):

1. Every channel starts from the ignore map ("maskMiss": 0 where there are unlabeled people, such as crowds or
   people without keypoints).
2. The channels of parts the dataset does not label are set to 0 everywhere. So is every PAF channel that has such
   a part at either end (``getEmptyChannels``). Keypoints of those parts are not drawn.
3. Every cell where a Gaussian or a limb is drawn gets weight 1, inside ignore regions too.

Labeled keypoints outside the image are drawn too: their Gaussians and limbs are clipped to the grid. The C++
does the same after its crop, and only drops points outside the original image.

A labeled part whose keypoint has ``v = 0`` in one person is not masked. That person's location teaches "no part
here", as in the C++.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from densehuman.keypoints.layouts import BODY135_FLIP_INDEX, BODY135_PAF_PAIRS, NUM_BODY135

NUM_HEATMAPS = NUM_BODY135  # no background channel for BODY_135
NUM_PAF_CHANNELS = 2 * len(BODY135_PAF_PAIRS)  # 304
NUM_BODY_AND_FOOT = 25  # BODY_135 points 0-24 use the full sigma; the hands and the face (25-134) the smaller one

_PAF_A = np.array([a for a, _ in BODY135_PAF_PAIRS], dtype=np.int64)
_PAF_B = np.array([b for _, b in BODY135_PAF_PAIRS], dtype=np.int64)


@dataclass(frozen=True)
class TargetConfig:
    """Target parameters. The defaults are the BODY_135 training values of openpose_caffe_train.

    ``stride``: the label grid is ``(H // stride, W // stride)`` (``op_transform_param.stride: 8``).
    ``sigma``: Gaussian sigma in input pixels (``sKeypointSigmas = [7.0]``).
    ``hand_face_sigma_ratio``: sigma multiplier for the 40 hand and 70 face points (``rat = 5.75f/7.f``).
    ``max_exponent``: Gaussians are written where ``d^2 / (2 sigma^2) <= max_exponent`` (``4.6052``, ln 100).
    ``paf_threshold``: limb half-width and box margin, in grid cells (``const auto threshold = 1;``).
    ``ignore_reduction``: how the (H, W) ignore mask becomes a grid weight. ``"any"`` sets a cell to 0 if any
    pixel of its stride x stride block is ignored, so weights stay 0/1. ``"area"`` uses the block's kept fraction,
    which is the C++'s ``INTER_AREA`` resize of maskMiss; its weights are fractional at ignore borders.
    ``sigma_ratio_weights``: write ``1 / ratio`` (7 / 5.75 for hands and face) instead of 1 as the map weight
    where a Gaussian is drawn, as the C++ does (``mask = 1/partRatio``). It is off by default so that weights
    stay 0/1.
    """

    stride: int = 8
    sigma: float = 7.0
    hand_face_sigma_ratio: float = 5.75 / 7.0
    max_exponent: float = 4.6052
    paf_threshold: float = 1.0
    ignore_reduction: Literal["any", "area"] = "any"
    sigma_ratio_weights: bool = False

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not (self.sigma > 0 and self.hand_face_sigma_ratio > 0):
            raise ValueError(f"sigma and its ratio must be positive, got {self.sigma}, {self.hand_face_sigma_ratio}")
        if not self.max_exponent > 0:
            raise ValueError(f"max_exponent must be positive, got {self.max_exponent}")
        if not self.paf_threshold >= 0:
            raise ValueError(f"paf_threshold must be >= 0, got {self.paf_threshold}")
        if self.ignore_reduction not in ("any", "area"):
            raise ValueError(f"ignore_reduction must be 'any' or 'area', got {self.ignore_reduction!r}")

    def sigma_ratios(self) -> np.ndarray:
        """(135,) per-keypoint sigma ratio: 1 for body and feet, ``hand_face_sigma_ratio`` for hands and face."""
        ratios = np.full(NUM_HEATMAPS, self.hand_face_sigma_ratio, dtype=np.float64)
        ratios[:NUM_BODY_AND_FOOT] = 1.0
        return ratios

    def sigmas(self) -> np.ndarray:
        """(135,) per-keypoint Gaussian sigma in input pixels."""
        return self.sigma * self.sigma_ratios()


@dataclass(frozen=True)
class Targets:
    """Targets on the (H / stride, W / stride) grid, all float32.

    ``heatmaps`` (135, h, w) and ``pafs`` (304, h, w) are the targets. ``heatmap_weights`` and ``paf_weights``
    have the same shapes and hold the per-channel loss masks.
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    heatmap_weights: np.ndarray
    paf_weights: np.ndarray


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """``std::round``: halves away from zero (``np.round`` rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _keep_map(
    ignore_mask: np.ndarray | None, image_size: tuple[int, int], grid: tuple[int, int], config: TargetConfig
) -> np.ndarray:
    """(h * w,) float32 weight of each grid cell from the (H, W) ignore mask: 1 = keep, 0 = ignore."""
    gh, gw = grid
    if ignore_mask is None:
        return np.ones(gh * gw, dtype=np.float32)
    mask = np.asarray(ignore_mask, dtype=bool)
    if mask.shape != tuple(image_size):
        raise ValueError(f"ignore_mask has shape {mask.shape}, expected the image size {tuple(image_size)}")
    s = config.stride
    blocks = mask[: gh * s, : gw * s].reshape(gh, s, gw, s)
    if config.ignore_reduction == "any":
        keep = ~blocks.any(axis=(1, 3))
        return keep.astype(np.float32).ravel()
    return (1.0 - blocks.mean(axis=(1, 3), dtype=np.float64)).astype(np.float32).ravel()


def make_targets(
    keypoints: np.ndarray,
    image_size: tuple[int, int],
    labeled_parts: np.ndarray,
    ignore_mask: np.ndarray | None = None,
    config: TargetConfig | None = None,
) -> Targets:
    """BODY_135 confidence maps, PAFs and loss weights of one training image.

    ``keypoints``: (P, 135, 3) ``x, y, v`` in input-image pixels (integer = pixel centre), BODY_135 order, with
    COCO visibility: 0 = not labeled, 1 = labeled but occluded, 2 = visible. Both 1 and 2 are drawn.
    ``image_size``: (H, W) of the network input. ``labeled_parts``: (135,) bool, the parts the source dataset
    labels. ``ignore_mask``: optional (H, W) bool, True where unlabeled people are (COCO crowds, people without
    keypoints). See the module docstring for the exact rules.
    """
    cfg = config if config is not None else TargetConfig()
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[1:] != (NUM_BODY135, 3):
        raise ValueError(f"keypoints must have shape (P, {NUM_BODY135}, 3), got {kpts.shape}")
    labeled = np.asarray(labeled_parts, dtype=bool)
    if labeled.shape != (NUM_BODY135,):
        raise ValueError(f"labeled_parts must have shape ({NUM_BODY135},), got {labeled.shape}")
    height, width = (int(v) for v in image_size)
    gh, gw = height // cfg.stride, width // cfg.stride
    if gh < 1 or gw < 1:
        raise ValueError(f"image size {image_size} is smaller than one stride-{cfg.stride} cell")
    hw = gh * gw

    keep = _keep_map(ignore_mask, (height, width), (gh, gw), cfg)
    pair_labeled = labeled[_PAF_A] & labeled[_PAF_B]
    heatmap_weights = labeled.astype(np.float32)[:, None] * keep[None, :]
    paf_weights = np.repeat(pair_labeled, 2).astype(np.float32)[:, None] * keep[None, :]
    heatmaps = np.zeros((NUM_HEATMAPS, hw), dtype=np.float32)
    pafs = np.zeros((NUM_PAF_CHANNELS, hw), dtype=np.float32)

    # Drawn: labeled by the dataset, labeled in this person (v > 0) and finite.
    present = (kpts[..., 2] > 0) & labeled[None, :] & np.isfinite(kpts[..., :2]).all(axis=-1)
    _draw_gaussians(heatmaps.ravel(), heatmap_weights.ravel(), kpts, present, (gh, gw), cfg)
    _draw_pafs(pafs.ravel(), paf_weights.ravel(), kpts, present, (gh, gw), cfg)

    shape = (gh, gw)
    return Targets(
        heatmaps=heatmaps.reshape(NUM_HEATMAPS, *shape),
        pafs=pafs.reshape(NUM_PAF_CHANNELS, *shape),
        heatmap_weights=heatmap_weights.reshape(NUM_HEATMAPS, *shape),
        paf_weights=paf_weights.reshape(NUM_PAF_CHANNELS, *shape),
    )


def _draw_gaussians(
    heat: np.ndarray,
    weight: np.ndarray,
    kpts: np.ndarray,
    present: np.ndarray,
    grid: tuple[int, int],
    cfg: TargetConfig,
) -> None:
    """``putGaussianMaps`` for every drawn keypoint at once, on a window that holds its whole support."""
    gh, gw = grid
    person, part = np.nonzero(present)
    if person.size == 0:
        return
    x = kpts[person, part, 0]
    y = kpts[person, part, 1]
    ratios = cfg.sigma_ratios()
    multiplier = 2.0 * (cfg.sigma * ratios[part]) ** 2
    radius = np.sqrt(cfg.max_exponent * multiplier)  # in pixels: exponent <= max_exponent  <=>  |d| <= radius
    stride = cfg.stride
    start = stride / 2.0 - 0.5
    size = int(np.floor(2.0 * radius.max() / stride)) + 2  # more cells than any support interval can hold
    offsets = np.arange(size)
    gx0 = np.clip(np.ceil((x - start - radius) / stride), -size, gw).astype(np.int64)
    gy0 = np.clip(np.ceil((y - start - radius) / stride), -size, gh).astype(np.int64)
    gx = gx0[:, None] + offsets  # (N, size)
    gy = gy0[:, None] + offsets
    dx2 = (start + gx * stride - x[:, None]) ** 2
    dy2 = (start + gy * stride - y[:, None]) ** 2
    exponent = (dy2[:, :, None] + dx2[:, None, :]) / multiplier[:, None, None]  # (N, y, x)
    inside = ((gy >= 0) & (gy < gh))[:, :, None] & ((gx >= 0) & (gx < gw))[:, None, :]
    valid = inside & (exponent <= cfg.max_exponent)
    index = (part[:, None, None] * (gh * gw) + gy[:, :, None] * gw + gx[:, None, :])[valid]
    values = np.exp(-exponent[valid]).astype(np.float32)
    np.maximum.at(heat, index, values)  # people are merged with the maximum (values never exceed 1)
    if cfg.sigma_ratio_weights:
        weight[index] = (1.0 / np.broadcast_to(ratios[part][:, None, None], valid.shape)[valid]).astype(np.float32)
    else:
        weight[index] = 1.0


def _draw_pafs(
    paf: np.ndarray,
    weight: np.ndarray,
    kpts: np.ndarray,
    present: np.ndarray,
    grid: tuple[int, int],
    cfg: TargetConfig,
) -> None:
    """``putVectorMaps`` for every drawable limb at once: the cells of each limb's box are listed, then filtered."""
    gh, gw = grid
    hw = gh * gw
    person, pair = np.nonzero(present[:, _PAF_A] & present[:, _PAF_B])
    if person.size == 0:
        return
    a = kpts[person, _PAF_A[pair], :2] / cfg.stride  # label-grid units, as centerALabelScale
    b = kpts[person, _PAF_B[pair], :2] / cfg.stride
    direction = b - a
    length = np.hypot(direction[:, 0], direction[:, 1])
    ok = length > 0  # a zero-length limb has a NaN direction in the C++ and is skipped
    a, b, direction, length, pair = a[ok], b[ok], direction[ok], length[ok], pair[ok]
    if pair.size == 0:
        return
    unit = direction / length[:, None]
    thr = cfg.paf_threshold
    lo = _round_half_away(np.minimum(a, b) - thr)
    hi = _round_half_away(np.maximum(a, b) + thr)
    x0 = np.clip(lo[:, 0], 0, gw).astype(np.int64)
    y0 = np.clip(lo[:, 1], 0, gh).astype(np.int64)
    x1 = np.clip(hi[:, 0], 0, gw).astype(np.int64)
    y1 = np.clip(hi[:, 1], 0, gh).astype(np.int64)
    box_w = np.maximum(x1 - x0, 0)
    box_h = np.maximum(y1 - y0, 0)
    cells = box_w * box_h
    if not cells.any():
        return
    # Ragged listing of every box cell: limb id, then the cell's position inside its box.
    limb = np.repeat(np.arange(pair.size), cells)
    local = np.arange(limb.size) - np.repeat(np.cumsum(cells) - cells, cells)
    row = local // box_w[limb]
    gx = x0[limb] + (local - row * box_w[limb])
    gy = y0[limb] + row
    distance = np.abs((gx - a[limb, 0]) * unit[limb, 1] - (gy - a[limb, 1]) * unit[limb, 0])
    on = distance <= thr
    limb = limb[on]
    cell = gy[on] * gw + gx[on]
    if limb.size == 0:
        return
    x_index = 2 * pair[limb] * hw + cell
    y_index = x_index + hw
    _, inverse, counts = np.unique(x_index, return_inverse=True, return_counts=True)
    n = counts[inverse].astype(np.float32)  # people whose limb covers the cell
    np.add.at(paf, x_index, unit[limb, 0].astype(np.float32))
    np.add.at(paf, y_index, unit[limb, 1].astype(np.float32))
    mean_x = paf[x_index] / n  # read both before writing: a repeated index gets the same value every time
    mean_y = paf[y_index] / n
    paf[x_index] = mean_x
    paf[y_index] = mean_y
    weight[x_index] = 1.0
    weight[y_index] = 1.0


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """BODY_135 keypoints (..., 135, C) of the horizontally mirrored image, ``width`` pixels wide.

    ``x -> width - 1 - x``: integer coordinates are pixel centres, as in ``make_targets`` and openpose_caffe_train's
    ``flipKeypoints``. Left and right points then swap places (``BODY135_FLIP_PAIRS``). With C >= 3 the third
    column is the visibility, and rows with ``v == 0`` keep their coordinates, so ``0, 0, 0`` stays "missing".
    Flipping twice gives the input back.
    """
    kpts = np.asarray(keypoints)
    if kpts.ndim < 2 or kpts.shape[-2] != NUM_BODY135 or kpts.shape[-1] < 2:
        raise ValueError(f"keypoints must have shape (..., {NUM_BODY135}, C>=2), got {kpts.shape}")
    out = np.array(kpts, copy=True)
    mirrored = (width - 1) - kpts[..., 0]
    out[..., 0] = mirrored if kpts.shape[-1] < 3 else np.where(kpts[..., 2] > 0, mirrored, kpts[..., 0])
    return out[..., BODY135_FLIP_INDEX, :]


__all__ = [
    "NUM_HEATMAPS",
    "NUM_PAF_CHANNELS",
    "TargetConfig",
    "Targets",
    "flip_keypoints",
    "make_targets",
]
