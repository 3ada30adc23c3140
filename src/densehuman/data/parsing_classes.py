"""Human-parsing class tables of CIHP and MHP v2.0 and their left/right flip pairs (verbatim from the official
releases as soeaver/M2FP registers them; ``shared/reference/parsing.md`` section 1.10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# fmt: off
CIHP_CATEGORIES: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Gloves", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)
CIHP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))

MHP_CATEGORIES: tuple[str, ...] = (
    "Background", "Cap/Hat", "Helmet", "Face", "Hair", "Left-arm", "Right-arm", "Left-hand", "Right-hand",
    "Protector", "Bikini/bra", "Jacket/Windbreaker/Hoodie", "T-shirt", "Polo-shirt", "Sweater", "Singlet",
    "Torso-skin", "Pants", "Shorts/Swim-shorts", "Skirt", "Stockings", "Socks", "Left-boot", "Right-boot",
    "Left-shoe", "Right-shoe", "Left-highheel", "Right-highheel", "Left-sandal", "Right-sandal", "Left-leg",
    "Right-leg", "Left-foot", "Right-foot", "Coat", "Dress", "Robe", "Jumpsuits", "Other-full-body-clothes",
    "Headwear", "Backpack", "Ball", "Bats", "Belt", "Bottle", "Carrybag", "Cases", "Sunglasses", "Eyewear",
    "Gloves", "Scarf", "Umbrella", "Wallet/Purse", "Watch", "Wristband", "Tie", "Other-accessaries",
    "Other-upper-body-clothes", "Other-lower-body-clothes",
)
MHP_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (5, 6), (7, 8), (22, 23), (24, 25), (26, 27), (28, 29), (30, 31), (32, 33),
)
# fmt: on


@dataclass(frozen=True)
class ParsingClasses:
    """A dataset's part classes (background first) and the permutation a horizontal flip applies to labels."""

    name: str
    categories: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    score_threshold: float  # the official mIoU map keeps detections scoring at least this (SEMSEG_SCORE_THRESH)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def flip_permutation(self) -> np.ndarray:
        """(C,) int64: ``perm[label]`` is the label after a horizontal flip (left and right swapped)."""
        perm = np.arange(self.num_classes, dtype=np.int64)
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return perm


CIHP = ParsingClasses("cihp", CIHP_CATEGORIES, CIHP_FLIP_PAIRS, 0.3)
MHP = ParsingClasses("mhp", MHP_CATEGORIES, MHP_FLIP_PAIRS, 0.05)
DATASETS = {"cihp": CIHP, "mhp": MHP}
