"""A CIHP or MHP v2.0 split as training samples: each person of the parsing maps is a GT box with its labels.

The releases have no box files: a person's box is the bounding box of its pixels (``[x0, y0, x1 + 1, y1 + 1]``
in pixel-edge coordinates, as COCO converters of CIHP compute it), every person is category 0 (person) and not a
crowd, and there are no DensePose points. Images and label maps are read per item.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from densehuman.data.densepose_coco import DensePoseSample
from densehuman.data.parsing_folders import ParsingSplit, open_parsing_split, read_people
from densehuman.models.instances import ParsingMaps, Targets
from densehuman.validation import InputError
from densehuman.validation.images import read_image


def person_boxes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) float32 xyxy boxes of the K persons' pixels (``labels`` (K, H, W), a person is where labels > 0) and
    the (K,) mask of persons that have pixels at all."""
    boxes = np.zeros((len(labels), 4), dtype=np.float32)
    present = np.zeros(len(labels), dtype=bool)
    for k, person in enumerate(labels):
        ys, xs = np.nonzero(person)
        if xs.size:
            boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            present[k] = True
    return boxes, present


class ParsingFolderDataset(Dataset[DensePoseSample]):
    """The images of a CIHP / MHP v2.0 split (``open_parsing_split``) with their people's part labels."""

    def __init__(self, split: ParsingSplit) -> None:
        self.split = split
        self.image_ids: tuple[int, ...] = tuple(e.image_id for e in split.entries)

    @classmethod
    def open(cls, root: Path, split: str, dataset: str | None = None) -> ParsingFolderDataset:
        return cls(open_parsing_split(root, split, dataset))

    def __len__(self) -> int:
        return len(self.split.entries)

    def __repr__(self) -> str:
        return f"ParsingFolderDataset({self.split.root}, {len(self)} images, {self.split.classes.name})"

    def image_path(self, index: int) -> Path:
        return self.split.entries[index].image

    def check_image_files(self) -> None:
        missing = [e for e in self.split.entries if not e.image.is_file()]
        if missing:
            raise InputError(self.split.root, f"{missing[0].image} does not exist ({len(missing)} images missing)")

    def __getitem__(self, index: int) -> DensePoseSample:
        entry = self.split.entries[index]
        image = read_image(entry.image)
        labels = read_people(entry, self.split.classes)
        if labels.shape[1:] != image.shape[:2]:
            raise InputError(entry.image, f"label maps are {labels.shape[1:]}, the image {image.shape[:2]}")
        boxes, present = person_boxes(labels)
        labels, boxes = labels[present], boxes[present]
        count = len(boxes)
        targets = Targets(
            boxes=torch.from_numpy(boxes),
            classes=torch.zeros(count, dtype=torch.int64),
            densepose=[None] * count,
            crowd=torch.zeros(count, dtype=torch.bool),
            parsing=ParsingMaps(torch.from_numpy(labels), torch.ones(count, dtype=torch.bool)),
        )
        height, width = image.shape[:2]
        return DensePoseSample(
            image=image,
            image_id=entry.image_id,
            file_name=entry.image,
            targets=targets,
            annotation_ids=tuple(range(1, count + 1)),
            meta={"orig_size": (height, width), "flipped": False},
        )
