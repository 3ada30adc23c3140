"""Whole-body augmentation and training items: one affine warp per sample, then ``make_targets``.

openpose_caffe_train's ``op_transform_param`` (``wholebody.md`` §2): a person of the image is the crop's centre
(drawn among the labeled people); the scale makes that person's box ``target_dist`` (0.6) of the crop high, times
a factor drawn in the dataset's ``scale_range``; the rotation is uniform in +-``max_rotation`` degrees; the centre
moves by up to ``center_perturb`` crop pixels in x and y; the crop is ``crop_size`` square, padded grey (128); with
``flip_prob`` the crop is mirrored. All of it is ONE (2, 3) matrix applied to the image (``cv2.warpAffine``,
bilinear), the ignore mask (nearest) and the keypoints, so they stay aligned. A mirrored crop's keypoints go
through ``flip_keypoints`` (x -> W - 1 - x and the BODY_135 left/right swap).

Coordinates in the crop are pixel-centre coordinates (integer = pixel centre), as ``make_targets`` wants; a
dataset's ``pixel_origin`` says where pixel centres are in its file. The image becomes a (3, H, W) float tensor
normalised as the network expects (``Normalization``; OpenPose: BGR / 256 - 0.5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from densehuman.data.wholebody import WholeBodySample, WholeBodySource, ignore_mask
from densehuman.data.wholebody_mix import MixtureKey, WholeBodyDatasetSpec
from densehuman.models.bottomup.targets import TargetConfig, flip_keypoints, make_targets
from densehuman.validation.images import read_image

PAD_VALUE = 128
_AUGMENT_STREAM = 2


@dataclass(frozen=True)
class Normalization:
    """uint8 RGB -> network input: channels in ``channel_order``, then ``value * scale + offset``."""

    channel_order: Literal["bgr", "rgb"] = "bgr"
    scale: float = 1.0 / 256.0
    offset: float = -0.5

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        pixels = image[..., ::-1] if self.channel_order == "bgr" else image
        array = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) * np.float32(self.scale)
        return torch.from_numpy(array + np.float32(self.offset))


OPENPOSE_NORMALIZATION = Normalization()


@dataclass(frozen=True)
class AugmentParams:
    """The drawn augmentation of one sample: source point at the crop centre, scale, rotation, offset, flip."""

    center: tuple[float, float]  # in the file's coordinates
    scale: float
    rotation: float  # degrees, counter-clockwise in the image
    offset: tuple[float, float]  # crop pixels
    flip: bool
    crop_size: int
    pixel_origin: float = 0.0

    def matrix(self) -> np.ndarray:
        """(2, 3) affine from source pixel-centre coordinates to crop pixel-centre coordinates (flip included)."""
        theta = math.radians(self.rotation)
        c, s = math.cos(theta) * self.scale, math.sin(theta) * self.scale
        linear = np.array([[c, s], [-s, c]])
        cx, cy = self.center[0] - self.pixel_origin, self.center[1] - self.pixel_origin
        middle = (self.crop_size - 1) / 2.0
        shift = np.array([middle + self.offset[0], middle + self.offset[1]]) - linear @ np.array([cx, cy])
        out = np.concatenate([linear, shift[:, None]], axis=1)
        if self.flip:
            out = np.array([[-1.0, 0.0, self.crop_size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([out, [0, 0, 1]])
        return out


@dataclass(frozen=True)
class Augmented:
    """A warped sample: the crop (uint8 RGB), its keypoints (pixel centres), ignore mask and the matrix used."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    keypoints: np.ndarray  # (P, 135, 3) float32
    ignore_mask: np.ndarray  # (S, S) bool
    labeled_parts: np.ndarray  # (135,)
    matrix: np.ndarray  # (2, 3)
    flipped: bool


def draw_params(sample: WholeBodySample, spec: WholeBodyDatasetSpec, rng: np.random.Generator) -> AugmentParams:
    """Draw the augmentation of ``sample`` with the dataset's settings (see the module docstring)."""
    height, width = sample.size
    labeled = [p for p in range(sample.num_people) if (sample.keypoints[p, :, 2] > 0).any()]
    if labeled:
        p = labeled[int(rng.integers(len(labeled)))]
        x0, y0, x1, y1 = (float(v) for v in sample.boxes[p])
        x0, x1 = max(x0, 0.0), min(x1, float(width))
        y0, y1 = max(y0, 0.0), min(y1, float(height))
        center = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        person_height = max(y1 - y0, 1.0)
    else:
        center = (width / 2.0, height / 2.0)
        person_height = float(height)
    low, high = spec.scale_range
    scale = spec.target_dist * spec.crop_size / person_height * float(rng.uniform(low, high))
    rotation = float(rng.uniform(-spec.max_rotation, spec.max_rotation))
    ox, oy = (float(v) for v in rng.uniform(-spec.center_perturb, spec.center_perturb, size=2))
    flip = bool(rng.random() < spec.flip_prob)
    return AugmentParams(center, scale, rotation, (ox, oy), flip, spec.crop_size, spec.pixel_origin)


def transform_points(keypoints: np.ndarray, matrix: np.ndarray, origin: float = 0.0) -> np.ndarray:
    """(..., 3) keypoints through the (2, 3) matrix (after moving pixel centres to integers by ``origin``); rows
    with v = 0 stay 0, 0, 0."""
    kpts = np.asarray(keypoints, dtype=np.float64)
    xy = kpts[..., :2] - origin
    moved = xy @ matrix[:, :2].T + matrix[:, 2]
    present = kpts[..., 2:3] > 0
    return np.concatenate([np.where(present, moved, 0.0), kpts[..., 2:3]], axis=-1).astype(np.float32)


def augment(sample: WholeBodySample, image: np.ndarray, params: AugmentParams) -> Augmented:
    """Warp the image, ignore mask and keypoints of ``sample`` with ``params`` (one matrix for all three)."""
    if image.shape[:2] != tuple(sample.size):
        raise ValueError(f"{sample.image_path}: image is {image.shape[:2]}, the annotations say {sample.size}")
    size = params.crop_size
    unflipped = dataclasses.replace(params, flip=False)
    matrix = params.matrix()
    crop = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    mask = np.zeros((size, size), dtype=bool)
    if sample.ignore:
        warped = cv2.warpAffine(
            ignore_mask(sample).astype(np.uint8), matrix, (size, size), flags=cv2.INTER_NEAREST, borderValue=0
        )
        mask = warped > 0
    kpts = transform_points(sample.keypoints, unflipped.matrix(), params.pixel_origin)
    if params.flip:
        kpts = flip_keypoints(kpts, size)
    return Augmented(crop, kpts, mask, sample.labeled_parts, matrix, params.flip)


class WholeBodyTrainingSet(Dataset[dict[str, Any]]):
    """The mix as a dataset indexed by ``MixtureKey``: read, augment (generator seeded by (seed, position)), make
    the targets. An item is a dict of tensors: ``image`` (3, S, S) normalised, ``heatmaps`` / ``heatmap_weights``
    (135, S/8, S/8), ``pafs`` / ``paf_weights`` (304, S/8, S/8), ``dataset`` and ``position``."""

    def __init__(
        self,
        sources: Sequence[WholeBodySource],
        specs: Sequence[WholeBodyDatasetSpec],
        *,
        seed: int = 0,
        normalization: Normalization = OPENPOSE_NORMALIZATION,
        targets: TargetConfig | None = None,
    ) -> None:
        if len(sources) != len(specs):
            raise ValueError(f"{len(sources)} sources for {len(specs)} dataset specs")
        self.sources, self.specs = list(sources), list(specs)
        self.seed, self.normalization = int(seed), normalization
        self.target_config = targets if targets is not None else TargetConfig()

    @property
    def sizes(self) -> list[int]:
        return [len(s) for s in self.sources]

    def rng(self, position: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _AUGMENT_STREAM, position])

    def augmented(self, key: MixtureKey) -> Augmented:
        sample = self.sources[key.dataset][key.index]
        image = read_image(sample.image_path)
        return augment(sample, image, draw_params(sample, self.specs[key.dataset], self.rng(key.position)))

    def __getitem__(self, key: MixtureKey) -> dict[str, Any]:
        aug = self.augmented(key)
        size = aug.image.shape[:2]
        made = make_targets(aug.keypoints, size, aug.labeled_parts, aug.ignore_mask, self.target_config)
        return {
            "image": self.normalization(aug.image),
            "heatmaps": torch.from_numpy(made.heatmaps),
            "heatmap_weights": torch.from_numpy(made.heatmap_weights),
            "pafs": torch.from_numpy(made.pafs),
            "paf_weights": torch.from_numpy(made.paf_weights),
            "dataset": key.dataset,
            "position": key.position,
        }
