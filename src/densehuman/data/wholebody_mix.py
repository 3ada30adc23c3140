"""The multi-dataset whole-body mix: which files, with which kind, probability and augmentation; the sampler.

``WholeBodyDataConfig`` lists the datasets (``WholeBodyDatasetSpec``). Its default for a ``densehuman synth``
dataset (``synthetic_mix``) follows the BODY_135 recipe (``wholebody.md`` §2 "Training recipe"): COCO_135_17 0.73,
COCO_135_23 0.05, MPII_135_16 0.05, FACE_135_70 0.02 (three face sets), HAND_135_21 0.005, HAND_135_42 0.05,
DOME_135 0.075. The synthetic data has no MPII, so its share goes to the body-only set; the probabilities are
weights (normalised by the sampler; the recipe's sum to 0.98, the rest being background-only images).

``MixtureSampler`` is an endless stream of ``MixtureKey``s: position p picks dataset k with its probability from a
generator seeded by (seed, p // block), and takes the next image of k's current epoch (a permutation seeded by
(seed, k, epoch)). The stream is a function of (seed, probabilities, sizes) only, so ``start`` resumes it exactly,
and with R ranks rank r takes positions r, r + R, ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

from densehuman.data.wholebody import KIND_ALIASES, KINDS, WholeBodySource, read_body135, read_coco_wholebody

_BLOCK = 4096


@dataclass(frozen=True)
class WholeBodyDatasetSpec:
    """One dataset of the mix.

    ``annotations``: the JSON; ``images``: the folder its ``file_name``s are relative to; ``kind``: ``KINDS`` (None:
    the file's ``info.partial_kind``, else ``wholebody``); ``format``: ``coco_wholebody`` or ``body135``.
    Augmentation (openpose_caffe_train ``op_transform_param``): ``scale_range`` multiplies the scale that makes the
    centred person ``target_dist`` of the crop high; ``max_rotation`` degrees; ``center_perturb`` pixels of the crop;
    ``crop_size`` (square); ``flip_prob``. ``pixel_origin``: where the centre of pixel (0, 0) is in the file's
    coordinates: 0 for COCO / OpenPose (integer = pixel centre), 0.5 for ``densehuman synth`` (pixel i spans
    [i, i + 1)).
    """

    name: str
    annotations: Path
    images: Path
    kind: str | None = None
    format: Literal["coco_wholebody", "body135"] = "coco_wholebody"
    probability: float = 1.0
    scale_range: tuple[float, float] = (1.0 / 3.0, 1.5)
    max_rotation: float = 45.0
    center_perturb: float = 40.0
    crop_size: int = 480
    flip_prob: float = 0.5
    target_dist: float = 0.6
    pixel_origin: float = 0.0

    def __post_init__(self) -> None:
        if self.kind is not None and KIND_ALIASES.get(self.kind, self.kind) not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r} (kinds: {', '.join(KINDS)})")
        if self.format not in ("coco_wholebody", "body135"):
            raise ValueError(f"{self.name}: format must be coco_wholebody or body135, got {self.format!r}")
        if not (self.probability >= 0 and np.isfinite(self.probability)):
            raise ValueError(f"{self.name}: probability must be a non-negative number, got {self.probability}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"{self.name}: scale_range must be 0 < low <= high, got {self.scale_range}")
        if self.max_rotation < 0 or self.center_perturb < 0 or self.target_dist <= 0:
            raise ValueError(f"{self.name}: max_rotation, center_perturb >= 0 and target_dist > 0 needed")
        if self.crop_size < 8:
            raise ValueError(f"{self.name}: crop_size must be at least 8, got {self.crop_size}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"{self.name}: flip_prob must be in [0, 1], got {self.flip_prob}")

    def load(self) -> WholeBodySource:
        if self.format == "body135":
            return read_body135(self.annotations, self.images, name=self.name)
        return read_coco_wholebody(self.annotations, self.images, kind=self.kind, name=self.name)


@dataclass(frozen=True)
class WholeBodyDataConfig:
    """The datasets of the mix and the seed of its sampler."""

    datasets: tuple[WholeBodyDatasetSpec, ...] = field(default_factory=tuple)
    seed: int = 0

    def __post_init__(self) -> None:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        if self.datasets and sum(d.probability for d in self.datasets) <= 0:
            raise ValueError("the dataset probabilities sum to 0")

    @property
    def probabilities(self) -> np.ndarray:
        weights = np.array([d.probability for d in self.datasets], dtype=np.float64)
        return weights / weights.sum()


# (name, kind, recipe probability, scale range): COCO_135_17 + MPII, COCO_135_23, FACE_135_70, HAND_135_21 and 42,
# DOME_135. The close-up face and hand crops are already zoomed in, so their range is narrower than the recipe's
# hand-dome [2/3, 4.5] (whose base scale is a whole person's).
SYNTHETIC_MIX: tuple[tuple[str, str, float, tuple[float, float]], ...] = (
    ("coco_body", "coco_body", 0.78, (1.0 / 3.0, 1.5)),
    ("coco_foot", "coco_foot", 0.05, (1.0 / 3.0, 1.5)),
    ("face", "face", 0.02, (0.5, 1.25)),
    ("hand21", "hand21", 0.005, (0.5, 1.25)),
    ("hand42", "hand42", 0.05, (0.5, 1.25)),
    ("wholebody", "wholebody", 0.075, (2.0 / 3.0, 2.5)),
)
CROP_KINDS = ("face", "hand21", "hand42")


def partial_json(root: Path, kind: str, split: str) -> Path:
    """Where ``densehuman synth-partial`` writes a kind's JSON by default."""
    return Path(root) / "annotations" / f"coco_wholebody_{kind}_{split}.json"


def partial_images(root: Path, kind: str, split: str) -> Path:
    """The image folder of a kind's JSON: the crops for face and hand kinds, else the split's images."""
    return Path(root) / "images" / (f"{kind}_{split}" if kind in CROP_KINDS else split)


def synthetic_mix(
    root: Path, split: str = "train", *, crop_size: int = 480, seed: int = 0, body135: bool = True
) -> WholeBodyDataConfig:
    """The default mix over a ``densehuman synth`` dataset whose partial files ``densehuman synth-partial`` wrote.
    The whole-body set reads ``body135_{split}.json`` (all 135 points) when ``body135``, else the kind's JSON."""
    root = Path(root)
    specs = []
    for name, kind, probability, scales in SYNTHETIC_MIX:
        whole = kind == "wholebody" and body135
        annotations = root / "annotations" / f"body135_{split}.json" if whole else partial_json(root, kind, split)
        specs.append(
            WholeBodyDatasetSpec(
                name=name,
                annotations=annotations,
                images=partial_images(root, kind, split),
                kind=kind,
                format="body135" if whole else "coco_wholebody",
                probability=probability,
                scale_range=scales,
                crop_size=crop_size,
                pixel_origin=0.5,
            )
        )
    return WholeBodyDataConfig(tuple(specs), seed=seed)


@dataclass(frozen=True)
class MixtureKey:
    """What ``MixtureSampler`` yields: the position in the global stream, the dataset, the image in it."""

    position: int
    dataset: int
    index: int


class MixtureSampler(Sampler[MixtureKey]):
    """Endless, seeded, resumable stream of (dataset, image) draws (see the module docstring)."""

    def __init__(
        self,
        sizes: Sequence[int],
        probabilities: Sequence[float],
        *,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(sizes) != len(probabilities) or not sizes:
            raise ValueError(f"need one probability per dataset, got {len(probabilities)} for {len(sizes)}")
        weights = np.asarray(probabilities, dtype=np.float64)
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError(f"probabilities must be non-negative with a positive sum, got {list(probabilities)}")
        weights = np.where(np.asarray(sizes) > 0, weights, 0.0)
        if weights.sum() <= 0:
            raise ValueError(f"every dataset with a positive probability is empty (sizes {list(sizes)})")
        if start < 0 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need start >= 0 and 0 <= rank < world_size, got {start}, {rank}, {world_size}")
        self.sizes = [int(s) for s in sizes]
        self.probabilities = weights / weights.sum()
        self.seed, self.start, self.rank, self.world_size = int(seed), int(start), int(rank), int(world_size)

    def _block(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0, block])
        return rng.choice(len(self.sizes), size=_BLOCK, p=self.probabilities)

    def _order(self, dataset: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 1, dataset, epoch]).permutation(self.sizes[dataset])

    def __iter__(self) -> Iterator[MixtureKey]:
        position = self.start * self.world_size + self.rank
        first = position // _BLOCK
        counts = np.zeros(len(self.sizes), dtype=np.int64)  # draws of each dataset before the current block
        for block in range(first):
            counts += np.bincount(self._block(block), minlength=len(self.sizes))
        orders: dict[int, tuple[int, np.ndarray]] = {}
        block, choices, ranks = first - 1, np.zeros(0, np.int64), np.zeros(0, np.int64)
        while True:
            b, offset = divmod(position, _BLOCK)
            while block < b:
                if block >= first:
                    counts += np.bincount(choices, minlength=len(self.sizes))
                block += 1
                choices = self._block(block)
                onehot = choices[:, None] == np.arange(len(self.sizes))[None, :]
                ranks = (np.cumsum(onehot, axis=0) - onehot)[np.arange(_BLOCK), choices]
            k = int(choices[offset])
            drawn = int(counts[k] + ranks[offset])  # earlier draws of dataset k in the global stream
            epoch, slot = divmod(drawn, self.sizes[k])
            if orders.get(k, (-1,))[0] != epoch:
                orders[k] = (epoch, self._order(k, epoch))
            yield MixtureKey(position, k, int(orders[k][1][slot]))
            position += self.world_size
