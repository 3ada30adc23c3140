"""MHP v2.0 labels of a synthetic person: our garment regions (CIHP classes) mapped onto MHP v2.0's 59 classes.

The renderer labels every pixel with a CIHP class (``densehuman.synth.garments``). MHP v2.0 is finer in three ways
we can follow exactly, because the generator knows more than the CIHP map says:

- **Garment kinds.** The garment sampler's description tells a sleeveless top from a sleeved one, shorts from long
  trousers and boots from low shoes; MHP has classes for each (``STYLE_RULES``).
- **Hands and feet.** CIHP counts a bare hand as arm and a bare foot as leg; MHP has Left/Right-hand and
  Left/Right-foot. The DensePose chart of each pixel (``RenderedScene.chart``: charts 3/4 right/left hand, 5/6
  left/right foot) says where the hand and the foot begin (``CHART_RULES``). A rule only fires where the chart's
  side agrees with the CIHP class's side, so left classes stay on the person's left (MHP's flip pairs hold).
- Everything else is one CIHP class to one MHP class (``CIHP_TO_MHP``).

MHP classes we never produce (Helmet, Protector, Bikini/bra, bags, balls, ...) are simply absent. ``mhp_labels``
is what ``densehuman synth`` writes to ``LV-MHP-v2/{split}/parsing_annos/<id>_<NN>_<k>.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from densehuman.body.charts import CHART_NAMES
from densehuman.data.parsing_classes import CIHP_CATEGORIES, MHP_CATEGORIES

# The mapping, one row per CIHP class: (CIHP class, MHP v2.0 class).
# fmt: off
CIHP_TO_MHP: tuple[tuple[str, str], ...] = (
    ("Background", "Background"),      # not this person (other people and the scene)
    ("Hat", "Cap/Hat"),                # the crown of the head above a brim line: a cap or hat, not a Helmet
    ("Hair", "Hair"),                  # scalp hair, short to long down the back
    ("Gloves", "Gloves"),              # the whole hand and a cuff: stays Gloves on the hand charts
    ("Sunglasses", "Sunglasses"),      # lenses and bridge over the eyes (MHP's Eyewear is other glasses)
    ("UpperClothes", "T-shirt"),       # a sleeved top; a sleeveless one is a Singlet (STYLE_RULES)
    ("Dress", "Dress"),                # one piece from the neckline to a hem above the knee or below
    ("Coat", "Coat"),                  # long or short, long sleeves; never Jacket/Windbreaker/Hoodie
    ("Socks", "Socks"),                # ankle to mid-calf socks, not Stockings
    ("Pants", "Pants"),                # long trousers; shorts are Shorts/Swim-shorts (STYLE_RULES)
    ("Torso-skin", "Torso-skin"),      # bare neck, chest, belly and back
    ("Scarf", "Scarf"),                # round the neck, with or without tails
    ("Skirt", "Skirt"),                # from the waist to a hem above or below the knee
    ("Face", "Face"),                  # skin of the head below the hair, eyes and mouth included
    ("Left-arm", "Left-arm"),          # bare arm skin; the hand is Left-hand (CHART_RULES)
    ("Right-arm", "Right-arm"),        # the mirror image: the hand is Right-hand
    ("Left-leg", "Left-leg"),          # bare leg skin; a bare foot is Left-foot (CHART_RULES)
    ("Right-leg", "Right-leg"),        # the mirror image: a bare foot is Right-foot
    ("Left-shoe", "Left-shoe"),        # low shoes; boots are Left-boot (STYLE_RULES)
    ("Right-shoe", "Right-shoe"),      # the mirror image: boots are Right-boot
)

# Garment kinds from the person's outfit description (``Outfit.description``):
# (CIHP class, garment, field, value, MHP class) = pixels of that class become the MHP class when
# ``outfit[garment][field] == value``.
STYLE_RULES: tuple[tuple[str, str, str, str, str], ...] = (
    ("UpperClothes", "upper", "sleeves", "none", "Singlet"),             # a sleeveless top
    ("Pants", "pants", "style", "shorts", "Shorts/Swim-shorts"),         # shorts, above the knee
    ("Left-shoe", "shoes", "style", "boots", "Left-boot"),               # boots reach above the ankle
    ("Right-shoe", "shoes", "style", "boots", "Right-boot"),             # the mirror image
)

# Hands and feet from the DensePose chart: (CIHP class, chart, MHP class) = pixels of the CIHP class on that chart
# become the MHP class. Only skin classes: a glove stays Gloves, a sock Socks, a shoe a shoe.
CHART_RULES: tuple[tuple[str, str, str], ...] = (
    ("Left-arm", "left_hand", "Left-hand"),       # chart 4
    ("Right-arm", "right_hand", "Right-hand"),    # chart 3
    ("Left-leg", "left_foot", "Left-foot"),       # chart 5
    ("Right-leg", "right_foot", "Right-foot"),    # chart 6
)
# fmt: on

NUM_CHARTS_WITH_BACKGROUND = len(CHART_NAMES)


def _cihp(name: str) -> int:
    return CIHP_CATEGORIES.index(name)


def _mhp(name: str) -> int:
    return MHP_CATEGORIES.index(name)


def _base_table() -> np.ndarray:
    table = np.zeros(len(CIHP_CATEGORIES), dtype=np.uint8)
    for cihp, mhp in CIHP_TO_MHP:
        table[_cihp(cihp)] = _mhp(mhp)
    return table


BASE_TABLE: np.ndarray = _base_table()  # (20,) uint8: MHP class of each CIHP class before STYLE_/CHART_RULES


def person_table(outfit: Mapping[str, Any]) -> np.ndarray:
    """(20, 25) uint8: MHP class of a pixel by (CIHP class, DensePose chart) for a person wearing ``outfit``
    (``Outfit.description``; garments it does not list, or fields it lacks, leave the base mapping)."""
    cihp_to_mhp = BASE_TABLE.copy()
    for cihp, garment, field, value, mhp in STYLE_RULES:
        worn = outfit.get(garment)
        if isinstance(worn, Mapping) and worn.get(field) == value:
            cihp_to_mhp[_cihp(cihp)] = _mhp(mhp)
    table = np.repeat(cihp_to_mhp[:, None], NUM_CHARTS_WITH_BACKGROUND, axis=1)
    for cihp, chart, mhp in CHART_RULES:
        table[_cihp(cihp), CHART_NAMES.index(chart)] = _mhp(mhp)
    return table


def mhp_labels(parsing: np.ndarray, chart: np.ndarray, outfit: Mapping[str, Any]) -> np.ndarray:
    """MHP v2.0 classes (uint8, 0..58, the shape of ``parsing``) of one person's pixels.

    Args:
        parsing: CIHP classes 0..19 of the pixels (0 = background stays 0).
        chart: the pixels' DensePose charts 0..24 (``RenderedScene.chart``).
        outfit: the person's ``Outfit.description`` (its garment kinds refine the mapping).
    """
    parsing, chart = np.asarray(parsing), np.asarray(chart)
    if parsing.shape != chart.shape:
        raise ValueError(f"parsing {parsing.shape} and chart {chart.shape} must have the same shape")
    if parsing.size and (int(parsing.max()) >= len(CIHP_CATEGORIES) or int(chart.max()) >= len(CHART_NAMES)):
        raise ValueError("parsing must hold CIHP classes 0..19 and chart DensePose charts 0..24")
    return person_table(outfit)[parsing.astype(np.intp), chart.astype(np.intp)]
