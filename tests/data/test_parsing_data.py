"""Parsing training data: the synthetic DensePose-COCO + CIHP join, CIHP / MHP folders as samples, and the
transforms moving the label maps with everything else (resize nearest, flip with the class swap)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from densehuman.data.densepose_coco import synthetic_split
from densehuman.data.parsing_classes import CIHP, MHP
from densehuman.data.parsing_dataset import ParsingFolderDataset, person_boxes
from densehuman.data.transforms import RandomFlip, ResizeShortestEdge
from densehuman.validation import InputError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path_factory.mktemp("parsing") / "ds"
    config = SynthConfig(size=(128, 128), min_people=2, max_people=3)
    run_synth(SynthJob(root, images=3, seed=11, val_fraction=0.0, config=config, workers=1, preview_count=0), False)
    return root


def test_synthetic_join_gives_each_annotation_its_own_cihp_labels(dataset: Path) -> None:
    ds = synthetic_split(dataset, "train", parsing=True)
    cihp = dataset / "CIHP" / "instance-level_human_parsing" / "Training"
    for k in range(len(ds)):
        sample = ds[k]
        stem = sample.file_name.stem
        category = cv2.imread(str(cihp / "Category_ids" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        human = cv2.imread(str(cihp / "Human_ids" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        maps = sample.targets.parsing
        assert maps is not None
        assert maps.labels.shape == (len(sample.targets.boxes), *category.shape)
        assert bool(maps.has.all())
        for j, labels in enumerate(maps.labels.numpy()):
            rank = j + 1  # annotations in id order = Human_ids 1..K (the synthetic layout)
            np.testing.assert_array_equal(labels, np.where(human == rank, category, 0))
            if labels.any():  # the person's labels lie inside its box
                x0, y0, x1, y1 = sample.targets.boxes[j].tolist()
                ys, xs = np.nonzero(labels)
                assert x0 <= xs.min()
                assert xs.max() < x1 + 1
                assert y0 <= ys.min()
                assert ys.max() < y1 + 1
    assert synthetic_split(dataset, "train")[0].targets.parsing is None  # only when asked


def test_cihp_and_mhp_folders_give_people_with_mask_boxes(dataset: Path) -> None:
    cihp = ParsingFolderDataset.open(dataset, "train", "cihp")
    mhp = ParsingFolderDataset.open(dataset, "train", "mhp")
    assert len(cihp) == len(mhp) == 3
    for k in range(3):
        a, b = cihp[k], mhp[k]
        assert a.targets.parsing is not None
        assert b.targets.parsing is not None
        torch.testing.assert_close(a.targets.boxes, b.targets.boxes)  # the same people, other class tables
        assert int(b.targets.parsing.labels.max()) < MHP.num_classes
        assert a.targets.densepose == [None] * len(a.targets.boxes)
        for box, labels in zip(a.targets.boxes, a.targets.parsing.labels, strict=True):
            ys, xs = torch.nonzero(labels, as_tuple=True)
            assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_person_boxes_known_answer() -> None:
    labels = np.zeros((2, 6, 9), np.uint8)
    labels[0, 1:3, 2:7] = 5
    boxes, present = person_boxes(labels)
    np.testing.assert_array_equal(boxes[0], [2, 1, 7, 3])  # pixel edges: x1 = last column + 1
    assert present.tolist() == [True, False]


def test_flip_mirrors_the_maps_and_swaps_left_and_right(dataset: Path) -> None:
    sample = synthetic_split(dataset, "train", parsing=True)[0]
    assert sample.targets.parsing is not None
    flipped = RandomFlip(1.0).flip(sample)
    assert flipped.targets.parsing is not None
    before = sample.targets.parsing.labels.numpy()
    after = flipped.targets.parsing.labels.numpy()
    np.testing.assert_array_equal(after, CIHP.flip_permutation()[before[..., ::-1]])
    left = before == 14
    assert left.any()
    assert (after[..., ::-1][left] == 15).all()  # left arm pixels become right arm pixels at the mirrored place
    mhp_flip = RandomFlip(1.0, parsing_permutation=MHP.flip_permutation().tolist())
    assert mhp_flip.parsing_permutation[7] == 8  # left-hand <-> right-hand
    with pytest.raises(ValueError, match="parsing_permutation"):
        RandomFlip(1.0, parsing_permutation=[0, 2, 2])


def test_resize_keeps_labels_unblended(dataset: Path) -> None:
    sample = synthetic_split(dataset, "train", parsing=True)[0]
    resized = ResizeShortestEdge((200,), 400)(sample, np.random.default_rng(0))
    assert resized.targets.parsing is not None
    assert resized.targets.parsing.labels.shape[1:] == resized.image.shape[:2]
    assert set(np.unique(resized.targets.parsing.labels.numpy())) <= set(
        np.unique(sample.targets.parsing.labels.numpy())  # type: ignore[union-attr]
    )


def test_broken_label_maps_are_named(dataset: Path, tmp_path: Path) -> None:
    import shutil

    root = Path(shutil.copytree(dataset, tmp_path / "copy"))
    target = next((root / "CIHP" / "instance-level_human_parsing" / "Training" / "Category_ids").glob("*.png"))
    cv2.imwrite(str(target), np.full((128, 128), 40, np.uint8))  # label 40 is not a CIHP class
    ds = ParsingFolderDataset.open(root, "train", "cihp")
    index = [e.category for e in ds.split.entries].index(target)
    with pytest.raises(InputError, match=f"{target.name}: label 40 is not one of the 20 classes"):
        ds[index]
