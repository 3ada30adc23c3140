"""The training input pipeline a ``Config`` asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from densehuman.config import Config
from densehuman.data.densepose_coco import synthetic_split
from densehuman.data.loader import build_train_loader
from densehuman.data.transforms import train_transforms
from densehuman.engine.distributed import DistInfo


def build_training_loader(config: Config, data_root: Path, info: DistInfo, start_iter: int = 0) -> Any:
    """An endless, seeded loader of the training split; ``start_iter`` continues the stream after a resume.

    The flip uses the Anny body's exact left/right chart mirror ((I, U, V) -> (sym[I], 1 - U, V)); for the SMPL
    layout of real DensePose-COCO, pass ``densehuman.data.transforms.UVSymmetry`` instead.
    """
    dataset = synthetic_split(data_root, config.data.train_split, skip_empty=True)
    if len(dataset) == 0:
        raise ValueError(f"{data_root}: the {config.data.train_split} split has no image with people to train on")
    inp = config.input
    color = (inp.color_jitter,) * 3
    transforms = train_transforms(inp.min_size_train, inp.max_size_train, inp.flip_prob, color=color)
    per_rank = config.solver.ims_per_batch // info.world_size
    if per_rank < 1 or config.solver.ims_per_batch % info.world_size:
        raise ValueError(
            f"solver.ims_per_batch ({config.solver.ims_per_batch}) must be a multiple of the "
            f"{info.world_size} processes"
        )
    return build_train_loader(
        dataset,
        transforms,
        per_rank,
        config.data.num_workers,
        config.seed,
        info.distributed,
        start_iter=start_iter,
        rank=info.rank,
        world_size=info.world_size,
    )
