"""The training input pipeline a ``Config`` asks for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from densehuman.config import Config
from densehuman.data.densepose_coco import DensePoseCocoDataset
from densehuman.data.loader import build_train_loader
from densehuman.data.parsing_classes import DATASETS as PARSING_DATASETS
from densehuman.data.transforms import train_transforms
from densehuman.engine.distributed import DistInfo

if TYPE_CHECKING:
    from densehuman.data.parsing_dataset import ParsingFolderDataset


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


def training_dataset(config: Config, data_root: Path) -> DensePoseCocoDataset | ParsingFolderDataset:
    """The training split, checked whole: its annotation file (``densehuman.validation``) and that every image
    file it names exists (a missing one would otherwise stop the run hours in).

    ``data.format``: ``densepose_coco`` reads the DensePose-COCO JSON (and, for a model with a parsing branch, the
    CIHP maps of the same images, as ``densehuman synth`` writes them); ``cihp`` / ``mhp`` read a parsing split
    folder (``--data`` the CIHP or MHP v2.0 folder, or a synthetic dataset)."""
    fmt = config.data.format
    if fmt in ("cihp", "mhp"):
        from densehuman.data.parsing_dataset import ParsingFolderDataset

        parsing = ParsingFolderDataset.open(data_root, config.data.train_split, fmt)
        if len(parsing) == 0:
            raise ValueError(f"{data_root}: the {fmt} {config.data.train_split} split has no images")
        parsing.check_image_files()
        return parsing
    annotations, images = split_paths(config, data_root, "train")
    if not annotations.is_file():
        raise ValueError(
            f"--data {data_root}: no {annotations}; give a folder written by `densehuman synth`, or set "
            "data.train_json / data.train_images (and data.val_json / data.val_images) for real DensePose-COCO"
        )
    if not images.is_dir():
        raise ValueError(f"--data {data_root}: no image folder {images}")
    maps = None
    if config.model.parsing.enabled:
        from densehuman.data.parsing_folders import open_parsing_split

        maps = open_parsing_split(data_root, config.data.train_split, config.model.parsing.dataset)
    dataset = DensePoseCocoDataset(annotations, images, skip_empty=True, parsing=maps)
    if len(dataset) == 0:
        raise ValueError(f"{data_root}: the {config.data.train_split} split has no image with people to train on")
    dataset.check_image_files()
    return dataset


def build_training_loader(
    config: Config,
    data_root: Path,
    info: DistInfo,
    start_iter: int = 0,
    dataset: DensePoseCocoDataset | ParsingFolderDataset | None = None,
) -> Any:
    """An endless, seeded loader of the training split (``dataset``, or ``training_dataset``); ``start_iter``
    continues the stream after a resume.

    The flip uses the Anny body's exact left/right chart mirror ((I, U, V) -> (sym[I], 1 - U, V)); for the SMPL
    layout of real DensePose-COCO, pass ``densehuman.data.transforms.UVSymmetry`` instead.
    """
    if dataset is None:
        dataset = training_dataset(config, data_root)
    inp = config.input
    color = (inp.color_jitter,) * 3
    flip = PARSING_DATASETS[config.model.parsing.dataset].flip_permutation().tolist()
    transforms = train_transforms(
        inp.min_size_train, inp.max_size_train, inp.flip_prob, color=color, parsing_permutation=flip
    )
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
