"""Typed containers passed between the data pipeline, the detector and its branches.

Coordinates are pixels of the (resized) network input image, boxes are (x0, y0, x1, y1). DensePose annotations keep
detectron2's box-relative form so that resizing and flipping touch only the box (and, for a flip, the point
coordinates and charts): a point at ``(x, y)`` in [0, 256] of its GT box lies at ``x0 + x * (x1 - x0) / 256``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DensePoseTarget:
    """One annotated person's DensePose ground truth (``dp_*`` fields of DensePose-COCO)."""

    box: torch.Tensor  # (4,) float32 xyxy: the GT box the points and the mask are relative to
    x: torch.Tensor  # (P,) float32 in [0, 256], box-relative
    y: torch.Tensor  # (P,) float32 in [0, 256]
    i: torch.Tensor  # (P,) int64 chart 1..24
    u: torch.Tensor  # (P,) float32 in [0, 1]
    v: torch.Tensor  # (P,) float32 in [0, 1]
    segm: torch.Tensor | None = None  # (256, 256) int64 coarse part 0..14 over the box (from dp_masks)

    def to(self, device: torch.device | str) -> DensePoseTarget:
        return DensePoseTarget(
            self.box.to(device),
            self.x.to(device),
            self.y.to(device),
            self.i.to(device),
            self.u.to(device),
            self.v.to(device),
            None if self.segm is None else self.segm.to(device),
        )


@dataclass
class ParsingMaps:
    """The part labels of one image's GT people, in the pixels of the (transformed) image: ``labels[k]`` holds box
    k's person's part labels where that person is (0 elsewhere); ``has[k]`` says whether box k has parsing labels
    at all (people of a dataset without parsing, crowd boxes: False)."""

    labels: torch.Tensor  # (N, H, W) uint8
    has: torch.Tensor  # (N,) bool

    def to(self, device: torch.device | str) -> ParsingMaps:
        return ParsingMaps(self.labels.to(device), self.has.to(device))


@dataclass
class Targets:
    """Ground truth of one image for training."""

    boxes: torch.Tensor  # (N, 4) float32 xyxy
    classes: torch.Tensor  # (N,) int64, 0-based (person = 0)
    densepose: list[DensePoseTarget | None] = field(default_factory=list)  # len N; None: no DensePose points
    crowd: torch.Tensor | None = None  # (N,) bool; crowd boxes are neither positives nor negatives
    parsing: ParsingMaps | None = None  # human part labels of the N boxes

    def to(self, device: torch.device | str) -> Targets:
        return Targets(
            self.boxes.to(device),
            self.classes.to(device),
            [None if d is None else d.to(device) for d in self.densepose],
            None if self.crowd is None else self.crowd.to(device),
            None if self.parsing is None else self.parsing.to(device),
        )


@dataclass
class DensePoseOutput:
    """Raw DensePose predictor outputs for K boxes at heatmap resolution (detectron2's
    ``DensePoseChartPredictorOutput`` with its optional confidences)."""

    coarse_segm: torch.Tensor  # (K, 2 or 15, S, S)
    fine_segm: torch.Tensor  # (K, 25, S, S)
    u: torch.Tensor  # (K, 25, S, S)
    v: torch.Tensor  # (K, 25, S, S)
    sigma_1: torch.Tensor | None = None
    sigma_2: torch.Tensor | None = None
    kappa_u: torch.Tensor | None = None
    kappa_v: torch.Tensor | None = None
    fine_segm_confidence: torch.Tensor | None = None
    coarse_segm_confidence: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.coarse_segm.shape[0])

    def index(self, sel: slice | torch.Tensor) -> DensePoseOutput:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[sel]

        return DensePoseOutput(
            self.coarse_segm[sel],
            self.fine_segm[sel],
            self.u[sel],
            self.v[sel],
            pick(self.sigma_1),
            pick(self.sigma_2),
            pick(self.kappa_u),
            pick(self.kappa_v),
            pick(self.fine_segm_confidence),
            pick(self.coarse_segm_confidence),
        )


@dataclass
class ParsingOutput:
    """Part probabilities (softmax over the classes) of K boxes on the branch's square grid over each box."""

    probs: torch.Tensor  # (K, C, S, S)

    def __len__(self) -> int:
        return int(self.probs.shape[0])

    def index(self, sel: slice | torch.Tensor) -> ParsingOutput:
        return ParsingOutput(self.probs[sel])


@dataclass
class Prediction:
    """Detections of one image, in the pixels of the image as given to ``predict``, with each branch's output
    (the field named as the branch: ``densepose``, ``parsing``)."""

    boxes: torch.Tensor  # (N, 4) xyxy
    scores: torch.Tensor  # (N,)
    classes: torch.Tensor  # (N,) int64
    densepose: DensePoseOutput | None = None
    parsing: ParsingOutput | None = None
