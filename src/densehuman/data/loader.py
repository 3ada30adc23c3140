"""Batching DensePose samples for training and inference: samplers, ``collate``, ``DataLoader`` builders.

Training draws from an infinite, seeded stream of dataset indices (detectron2's ``TrainingSampler``): epoch e of
the stream is a permutation drawn from (seed, e), and rank r of R sees the stream's positions r, r + R, r + 2R, ...,
so ranks see disjoint slices of every epoch. Each drawn sample is augmented with its own generator seeded by
(seed, its position in the stream), so a batch is the same whatever the number of workers, and resuming at
iteration k (``start_iter``) gives exactly what the uninterrupted run would have given from there. Padding and
normalization are the model's job: a batch is lists of uint8 RGB images, ``Targets`` and metadata.

Workers are forked. Do not reconfigure OpenCV's thread pool inside them (``cv2.setNumThreads`` in a forked child
deadlocks now and then on the pool state copied from the parent); OpenCV itself works fine after the fork.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from densehuman.data.densepose_coco import DensePoseSample
from densehuman.data.transforms import Transform, apply_transforms
from densehuman.models.instances import Targets

Batch = tuple[list[torch.Tensor], list[Targets], list[dict[str, Any]]]
_PERMUTATION_STREAM = 0  # generator domains under one seed: epoch permutations and per-sample augmentation
_AUGMENT_STREAM = 1


@dataclasses.dataclass(frozen=True)
class SampleKey:
    """What a sampler yields: the sample's position in the (global) stream and its dataset index."""

    position: int
    index: int


class TrainingSampler(Sampler[SampleKey]):
    """Infinite stream of dataset indices for one rank, deterministic in (size, seed, rank, world_size).

    ``start`` skips the first ``start`` samples of this rank (resume at iteration k with ``start = k * batch``).
    """

    def __init__(
        self, size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True, start: int = 0
    ) -> None:
        if size < 1:
            raise ValueError(f"cannot sample from an empty dataset (size {size})")
        _check_rank(rank, world_size)
        if start < 0:
            raise ValueError(f"start must be non-negative, got {start}")
        self.size, self.seed, self.rank, self.world_size = int(size), int(seed), int(rank), int(world_size)
        self.shuffle, self.start = shuffle, int(start)

    def order(self, epoch: int) -> np.ndarray:
        """The dataset indices of the global stream's ``epoch``-th pass."""
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, _PERMUTATION_STREAM, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[SampleKey]:
        position = self.start * self.world_size + self.rank
        epoch, order = -1, np.zeros(0, dtype=np.int64)
        while True:
            e, offset = divmod(position, self.size)
            if e != epoch:
                epoch, order = e, self.order(e)
            yield SampleKey(position, int(order[offset]))
            position += self.world_size


class InferenceSampler(Sampler[SampleKey]):
    """Every index once, in order; with R ranks, rank r takes the r-th of R contiguous, near-equal shards."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1) -> None:
        _check_rank(rank, world_size)
        bounds = np.linspace(0, size, world_size + 1).round().astype(int)
        self.indices = range(int(bounds[rank]), int(bounds[rank + 1]))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[SampleKey]:
        return (SampleKey(i, i) for i in self.indices)


class TransformedDataset(Dataset[DensePoseSample]):
    """``dataset[key.index]`` passed through ``transforms`` with a generator seeded by (seed, key.position)."""

    def __init__(self, dataset: Dataset[DensePoseSample], transforms: Sequence[Transform], seed: int) -> None:
        self.dataset, self.transforms, self.seed = dataset, list(transforms), int(seed)

    def rng(self, position: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _AUGMENT_STREAM, position])

    def __getitem__(self, key: SampleKey) -> DensePoseSample:
        sample = apply_transforms(self.transforms, self.dataset[key.index], self.rng(key.position))
        return dataclasses.replace(sample, meta={**sample.meta, "position": key.position})


def collate(batch: Sequence[DensePoseSample]) -> Batch:
    """Samples -> (images: list of (3, H, W) uint8 RGB tensors, targets: list of ``Targets``, meta: list of dicts
    with ``image_id``, ``file_name``, ``annotation_ids``, ``orig_size`` (H, W as read), ``size`` (H, W now),
    ``flipped`` and ``position`` (in the sampler's stream; None outside a loader))."""
    images = [torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1))) for s in batch]
    targets = [s.targets for s in batch]
    meta = [
        {
            "image_id": s.image_id,
            "file_name": str(s.file_name),
            "annotation_ids": list(s.annotation_ids),
            "orig_size": tuple(s.meta.get("orig_size", s.size)),
            "size": s.size,
            "flipped": bool(s.meta.get("flipped", False)),
            "position": s.meta.get("position"),
        }
        for s in batch
    ]
    return images, targets, meta


def build_train_loader(
    dataset: Dataset[DensePoseSample],
    transforms: Sequence[Transform],
    batch_size: int,
    num_workers: int,
    seed: int,
    distributed: bool,
    shuffle: bool = True,
    *,
    start_iter: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> DataLoader[DensePoseSample]:
    """An endless loader of ``batch_size`` samples per rank per iteration (see the module docstring).

    With ``distributed``, rank and world size come from ``torch.distributed`` (which must be initialized) unless
    given; ``start_iter`` resumes the stream at that iteration.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if start_iter < 0:
        raise ValueError(f"start_iter must be non-negative, got {start_iter}")
    rank, world_size = _resolve_rank(distributed, rank, world_size)
    sampler = TrainingSampler(
        len(dataset),  # type: ignore[arg-type]
        seed=seed,
        rank=rank,
        world_size=world_size,
        shuffle=shuffle,
        start=start_iter * batch_size,
    )
    return DataLoader(
        TransformedDataset(dataset, transforms, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=True,
        persistent_workers=num_workers > 0,
        # Its own generator: creating an iterator must not draw from torch's global RNG, or a resumed run (which
        # restores that RNG) would drift from the uninterrupted one.
        generator=torch.Generator().manual_seed(seed),
    )


def build_test_loader(
    dataset: Dataset[DensePoseSample],
    transforms: Sequence[Transform],
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    distributed: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
) -> DataLoader[DensePoseSample]:
    """Every image once, in dataset order (this rank's contiguous shard when distributed). The transforms must be
    deterministic (no random flip, one fixed size): inference sees each image exactly as given."""
    random = [t for t in transforms if not t.deterministic]
    if random:
        raise ValueError(f"test transforms must be deterministic; these are random: {random}")
    rank, world_size = _resolve_rank(distributed, rank, world_size)
    return DataLoader(
        TransformedDataset(dataset, transforms, seed=0),
        batch_size=batch_size,
        sampler=InferenceSampler(len(dataset), rank=rank, world_size=world_size),  # type: ignore[arg-type]
        num_workers=num_workers,
        collate_fn=collate,
    )


def _resolve_rank(distributed: bool, rank: int | None, world_size: int | None) -> tuple[int, int]:
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither")
    if rank is not None and world_size is not None:
        _check_rank(rank, world_size)
        return rank, world_size
    if not distributed:
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs torch.distributed initialized (or explicit rank and world_size)")
    return dist.get_rank(), dist.get_world_size()


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
