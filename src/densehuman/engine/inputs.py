"""The training input pipeline a ``Config`` asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from densehuman.config import Config
from densehuman.data.densepose_coco import DensePoseCocoDataset
from densehuman.data.loader import build_train_loader
from densehuman.data.transforms import train_transforms
from densehuman.engine.distributed import DistInfo


def split_paths(config: Config, data_root: Path, which: str) -> tuple[Path, Path]:
    """(annotation JSON, image folder) of the train or val split: the config's explicit paths (real DensePose-COCO,
    e.g. ``densepose_coco_2014_train.json`` over ``train2014/``) or the synthetic layout."""
    d = config.data
    json_path, images, split = (
        (d.train_json, d.train_images, d.train_split) if which == "train" else (d.val_json, d.val_images, d.val_split)
    )
    if bool(json_path) != bool(images):
        raise ValueError(f"data.{which}_json and data.{which}_images must be given together")
    if json_path:
        return data_root / json_path, data_root / images  # absolute paths stay absolute under "/"
    return data_root / "annotations" / f"densepose_{split}.json", data_root / "images" / split


def build_training_loader(config: Config, data_root: Path, info: DistInfo, start_iter: int = 0) -> Any:
    """An endless, seeded loader of the training split; ``start_iter`` continues the stream after a resume.

    The flip uses the Anny body's exact left/right chart mirror ((I, U, V) -> (sym[I], 1 - U, V)); for the SMPL
    layout of real DensePose-COCO, pass ``densehuman.data.transforms.UVSymmetry`` instead.
    """
    annotations, images = split_paths(config, data_root, "train")
    dataset = DensePoseCocoDataset(annotations, images, skip_empty=True)
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
