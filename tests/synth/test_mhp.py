"""``densehuman synth``'s MHP v2.0 layout, read back with the real reader and checked against its CIHP files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from densehuman.body.charts import CHART_NAMES, CHART_SIDE, POINT_LABEL_SYMMETRIES
from densehuman.data.dense_png import read_iuv
from densehuman.data.parsing_classes import CIHP, CIHP_CATEGORIES, MHP, MHP_CATEGORIES
from densehuman.data.parsing_folders import MHP_PERSON_FILE, open_parsing_split, read_global, read_people
from densehuman.synth.engine import SynthJob, prepare_folder, run_synth
from densehuman.synth.generator import GeneratedImage, SynthConfig, build_generator
from densehuman.synth.mhp import CHART_RULES, CIHP_TO_MHP, STYLE_RULES, mhp_labels, person_table
from densehuman.synth.render import RenderedScene
from densehuman.synth.writers import MHP_ROOT, assemble, write_image_files

CONFIG = SynthConfig(size=(128, 128), max_people=4)
SEED, N_IMAGES = 3, 5  # these five images show boots, shorts, a singlet, a hat, bare hands and bare feet
LEFT_MHP = {MHP_CATEGORIES.index(n) for n in MHP_CATEGORIES if n.startswith("Left-")}
RIGHT_MHP = {MHP_CATEGORIES.index(n) for n in MHP_CATEGORIES if n.startswith("Right-")}


def _mhp(name: str) -> int:
    return MHP_CATEGORIES.index(name)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """The dataset, and each image's per-person outfit descriptions (regenerated: the records are not kept)."""
    out = tmp_path_factory.mktemp("synth_mhp") / "ds"
    job = SynthJob(out, images=N_IMAGES, seed=SEED, val_fraction=0.4, config=CONFIG, workers=1, preview_count=0)
    run_synth(job, progress=False)
    gen = build_generator(CONFIG, SEED)
    outfits = {f"{i + 1:012d}": [d["outfit"] for d in gen.make(i).description] for i in range(N_IMAGES)}
    return out, outfits


def test_the_table_maps_every_cihp_class_once_onto_mhp_classes() -> None:
    assert [c for c, _ in CIHP_TO_MHP] == list(CIHP_CATEGORIES)
    assert all(m in MHP_CATEGORIES for _, m in CIHP_TO_MHP)
    for cihp, _, _, _, mhp in STYLE_RULES:
        assert cihp in CIHP_CATEGORIES
        assert mhp in MHP_CATEGORIES
    for cihp, chart, mhp in CHART_RULES:
        assert cihp in CIHP_CATEGORIES
        assert chart in CHART_NAMES
        assert mhp in MHP_CATEGORIES


@pytest.mark.parametrize(
    "outfit",
    [{}, {"upper": {"sleeves": "none"}, "pants": {"style": "shorts"}, "shoes": {"style": "boots"}}],
)
def test_the_mapping_commutes_with_a_horizontal_flip(outfit: dict[str, Any]) -> None:
    """Flipping (CIHP class, chart) then mapping = mapping then flipping the MHP class: left stays left."""
    table = person_table(outfit).astype(np.int64)
    cihp_flip, mhp_flip = CIHP.flip_permutation(), MHP.flip_permutation()
    chart_flip = np.asarray(POINT_LABEL_SYMMETRIES)
    np.testing.assert_array_equal(table[cihp_flip][:, chart_flip], mhp_flip[table])


def test_garment_kinds_and_hands_and_feet() -> None:
    c = CIHP_CATEGORIES.index
    hand, foot, torso = (CHART_NAMES.index(n) for n in ("left_hand", "right_foot", "torso_front"))
    parsing = np.array([c("UpperClothes"), c("Pants"), c("Left-shoe"), c("Left-arm"), c("Right-leg"), c("Gloves"),
                        c("Left-arm"), c("Right-arm"), 0])  # fmt: skip
    chart = np.array([torso, 9, 5, hand, foot, hand, torso, hand, 0])
    plain = mhp_labels(parsing, chart, {"upper": {"sleeves": "long"}, "pants": {"style": "long"}})
    names = ["T-shirt", "Pants", "Left-shoe", "Left-hand", "Right-foot", "Gloves", "Left-arm", "Right-arm"]
    assert [MHP_CATEGORIES[m] for m in plain] == [*names, "Background"]  # a right arm on a left-hand chart: arm
    styled = mhp_labels(parsing, chart, {"upper": {"sleeves": "none"}, "pants": {"style": "shorts"},
                                         "shoes": {"style": "boots"}})  # fmt: skip
    assert [MHP_CATEGORIES[m] for m in styled[:3]] == ["Singlet", "Shorts/Swim-shorts", "Left-boot"]
    with pytest.raises(ValueError, match="same shape"):
        mhp_labels(parsing, chart[:2], {})


def test_the_split_indexes_every_image_with_its_people(dataset: tuple[Path, Any]) -> None:
    root, outfits = dataset
    seen = 0
    for split in ("train", "val"):
        listed = (root / MHP_ROOT / "list" / f"{split}.txt").read_text().split()
        assert listed == (root / "CIHP" / "instance-level_human_parsing" / f"{split}_id.txt").read_text().split()
        mhp = open_parsing_split(root, split, "mhp")
        assert mhp.classes is MHP
        assert mhp.root == root / MHP_ROOT / split
        assert [e.name for e in mhp] == listed
        for entry in mhp:
            assert entry.image == root / MHP_ROOT / split / "images" / f"{entry.name}.jpg"
            assert entry.image.read_bytes() == (root / "images" / split / f"{entry.name}.jpg").read_bytes()
            count = len(outfits[entry.name])
            assert count >= 1
            assert [p.name for p in entry.person_maps] == [f"{entry.name}_{count:02d}_{k:02d}.png"
                                                           for k in range(1, count + 1)]  # fmt: skip
            for path in entry.person_maps:
                match = MHP_PERSON_FILE.match(path.name)
                assert match is not None
                assert match["image"] == entry.name
        seen += len(mhp)
    assert seen == N_IMAGES


def test_each_persons_map_is_its_mapped_cihp_labels(dataset: tuple[Path, Any]) -> None:
    root, outfits = dataset
    found: set[int] = set()
    for split in ("train", "val"):
        cihp = {e.name: e for e in open_parsing_split(root, split, "cihp")}
        for entry in open_parsing_split(root, split, "mhp"):
            people = read_people(entry, MHP)
            cihp_people = read_people(cihp[entry.name], CIHP)  # Human_ids == k of Category_ids, k = 1..NN
            chart, _, _ = read_iuv(root / "dense" / split / f"{entry.name}_IUV.png")
            assert people.shape == cihp_people.shape
            assert people.dtype == np.uint8
            assert int(people.max()) < len(MHP_CATEGORIES)
            expected = np.zeros_like(people)
            for k, (labels, outfit) in enumerate(zip(cihp_people, outfits[entry.name], strict=True)):
                mask = labels > 0
                expected[k][mask] = mhp_labels(labels[mask], chart[mask], outfit)
                np.testing.assert_array_equal(people[k] > 0, mask)  # the person's pixels, 0 elsewhere
            np.testing.assert_array_equal(people, expected)
            np.testing.assert_array_equal(read_global(entry, MHP), expected.max(axis=0))  # people never overlap
            found |= set(np.unique(people).tolist())
    # The dataset exercises every kind of rule: garment kinds and hands / feet from the charts.
    wanted = {"Left-hand", "Right-hand", "Left-foot", "Right-foot", "Left-boot", "Shorts/Swim-shorts", "Singlet"}
    assert {_mhp(n) for n in wanted} <= found


def test_left_classes_lie_on_the_persons_left(dataset: tuple[Path, Any]) -> None:
    root, _ = dataset
    side = np.asarray(CHART_SIDE)
    hands_and_feet = {_mhp(m): CHART_NAMES.index(chart) for _, chart, m in CHART_RULES}
    counted = 0
    for split in ("train", "val"):
        for entry in open_parsing_split(root, split, "mhp"):
            labels = read_global(entry, MHP)
            chart, _, _ = read_iuv(root / "dense" / split / f"{entry.name}_IUV.png")
            for cls, hand_or_foot in hands_and_feet.items():
                assert (chart[labels == cls] == hand_or_foot).all(), MHP_CATEGORIES[cls]
            on_left = np.isin(labels, list(LEFT_MHP))
            on_right = np.isin(labels, list(RIGHT_MHP))
            assert (side[chart[on_left]] >= 0).all()
            assert (side[chart[on_right]] <= 0).all()
            counted += int(on_left.sum() + on_right.sum())
    assert counted > 100


def test_an_image_without_people_is_an_entry_without_maps(tmp_path: Path) -> None:
    size = (64, 80)
    empty = np.zeros(size, dtype=np.uint8)
    rendered = RenderedScene(
        image=np.full((*size, 3), 128, dtype=np.uint8), instance=empty.astype(np.int32), chart=empty,
        u=empty.astype(np.float32), v=empty.astype(np.float32), coarse=empty, parsing=empty,
        depth=np.full(size, np.inf, dtype=np.float32),
    )  # fmt: skip
    sample = GeneratedImage(0, rendered, [], empty, 90, [])
    record = write_image_files(tmp_path, "val", sample, CONFIG)
    assemble(tmp_path, [record], {"description": "test"})
    assert not any((tmp_path / MHP_ROOT / "val" / "parsing_annos").iterdir())
    (entry,) = open_parsing_split(tmp_path, "val", "mhp")
    assert entry.person_maps == ()
    assert read_people(entry, MHP).shape == (0, *size)
    assert not read_global(entry, MHP).any()
    assert len(open_parsing_split(tmp_path, "train", "mhp")) == 0  # an empty split is still a split


def test_overwrite_removes_the_mhp_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    stale = out / MHP_ROOT / "train" / "parsing_annos" / "000000000009_01_01.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    (out / "dataset.json").write_text("{}")
    prepare_folder(SynthJob(out, images=1, config=CONFIG), resume=False, overwrite=True)
    assert not (out / MHP_ROOT).exists()
