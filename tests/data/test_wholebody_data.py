"""Whole-body training data: readers, partial datasets and crops, augmentation, the mixture sampler."""

from __future__ import annotations

import argparse
import json
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from densehuman.data.wholebody import (
    KINDS,
    WHOLEBODY_FORMAT_PARTS,
    WholeBodySample,
    ignore_mask,
    kind_parts,
    read_body135,
    read_coco_wholebody,
)
from densehuman.data.wholebody_mix import MixtureKey, MixtureSampler, partial_images, partial_json, synthetic_mix
from densehuman.data.wholebody_transforms import (
    AugmentParams,
    WholeBodyTrainingSet,
    augment,
    draw_params,
)
from densehuman.keypoints.layouts import BODY135_FLIP_INDEX, BODY135_PAF_PAIRS, NUM_BODY135
from densehuman.models.bottomup.targets import flip_keypoints
from densehuman.synth.partial import run, write_partial
from densehuman.synth.partial_cli import KIND_CHOICES, add_parser
from densehuman.validation import InputError
from densehuman.validation.images import read_image

ALL_KINDS = ("coco_body", "coco_foot", "face", "hand21", "hand42", "wholebody")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path_factory.mktemp("wholebody") / "synth"
    job = SynthJob(
        root, images=4, seed=2, val_fraction=0.0, config=SynthConfig(size=(160, 160), max_people=2), workers=1,
        preview_count=0,
    )  # fmt: skip
    run_synth(job, progress=False)
    for kind in ALL_KINDS:
        write_partial(root, kind, split="train")
    return root


def _wb(root: Path) -> dict:
    return json.loads((root / "annotations" / "coco_wholebody_train.json").read_text())


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Colours of ``image`` at pixel-centre coordinates ``xy`` (N, 2)."""
    maps = xy.astype(np.float32).reshape(-1, 1, 2)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR).reshape(-1, 3).astype(np.float64)


# ------------------------------------------------------------------------------------------------ readers
def test_coco_wholebody_and_body135_readers_agree(dataset: Path) -> None:
    wb = read_coco_wholebody(dataset / "annotations" / "coco_wholebody_train.json", dataset / "images" / "train")
    b135 = read_body135(dataset / "annotations" / "body135_train.json", dataset / "images" / "train")
    assert wb.kind == "wholebody"
    assert len(wb) == len(b135) == 4
    assert not wb.labeled_parts[[17, 18]].any()
    assert b135.labeled_parts.all()
    compared = 0
    for a, b in zip(wb.samples, b135.samples, strict=True):
        assert a.image_id == b.image_id
        assert a.image_path == b.image_path
        assert a.annotation_ids == b.annotation_ids
        assert a.keypoints.shape == b.keypoints.shape == (a.num_people, NUM_BODY135, 3)
        both = a.labeled & (a.keypoints[..., 2] > 0)
        pupils = both.copy()
        pupils[:, :133] = False
        both[:, 133:] = False  # the pupils are derived from the eye contours, not copied
        np.testing.assert_allclose(a.keypoints[both][:, :2], b.keypoints[both][:, :2], atol=0.011)
        np.testing.assert_array_equal(a.keypoints[both][:, 2], b.keypoints[both][:, 2])
        np.testing.assert_allclose(a.keypoints[pupils][:, :2], b.keypoints[pupils][:, :2], atol=3.0)
        compared += int(both.sum())
        assert b.labeled.all()
    assert compared > 100


def test_invalid_face_and_hands_are_unlabeled_not_absent(dataset: Path) -> None:
    data = _wb(dataset)
    source = read_coco_wholebody(dataset / "annotations" / "coco_wholebody_train.json", dataset / "images" / "train")
    people = {aid: (s, p) for s in source.samples for p, aid in enumerate(s.annotation_ids)}
    seen = {"face": 0, "lefthand": 0, "valid": 0}
    for ann in data["annotations"]:
        sample, p = people[ann["id"]]
        labeled = sample.labeled[p]
        if not ann["face_valid"]:
            assert not labeled[65:135].any()
            assert (sample.keypoints[p, 65:135] == 0).all()
            nose = sample.keypoints[p, 0]
            if nose[2] > 0:  # the estimated face region is ignored
                assert ignore_mask(sample)[int(nose[1]), int(nose[0])]
            seen["face"] += 1
        else:
            assert labeled[65:133].all()
            seen["valid"] += 1
        if not ann["lefthand_valid"]:
            assert not labeled[25:45].any()
            seen["lefthand"] += 1
        else:
            assert labeled[25:45].all()
        assert labeled[:17].all()  # the body is labeled, with v = 0 meaning absent
    assert seen["face"]
    assert seen["lefthand"]
    assert seen["valid"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_partial_datasets_label_exactly_their_parts(dataset: Path, kind: str) -> None:
    source = read_coco_wholebody(partial_json(dataset, kind, "train"), partial_images(dataset, kind, "train"))
    assert source.kind == kind  # from info.partial_kind
    expected = kind_parts(kind) & WHOLEBODY_FORMAT_PARTS
    np.testing.assert_array_equal(source.labeled_parts, expected)
    assert len(source) > 0
    drawn = 0
    for sample in source.samples:
        assert not (sample.keypoints[:, ~expected, 2] > 0).any()
        drawn += int((sample.keypoints[..., 2] > 0).sum())
    assert drawn > 0
    spec = synthetic_mix(dataset).datasets[ALL_KINDS.index(kind)]
    training = WholeBodyTrainingSet([source], [spec], seed=3)
    item = training[MixtureKey(0, 0, 0)]
    assert item["image"].shape == (3, 480, 480)
    assert item["heatmaps"].shape == (135, 60, 60)
    assert float(item["image"].min()) >= -0.5
    assert float(item["image"].max()) < 0.5
    weights = item["heatmap_weights"].numpy()
    assert (weights[~expected] == 0).all()
    assert (weights[expected].max(axis=(1, 2)) > 0).all()
    pair_ok = np.array([expected[a] and expected[b] for a, b in BODY135_PAF_PAIRS]).repeat(2)
    assert (item["paf_weights"].numpy()[~pair_ok] == 0).all()


@pytest.mark.parametrize("kind", ["face", "hand42"])
def test_crops_keep_keypoints_on_the_same_content(dataset: Path, kind: str) -> None:
    original = {a["id"]: a for a in _wb(dataset)["annotations"]}
    files = {im["id"]: im["file_name"] for im in _wb(dataset)["images"]}
    crops = json.loads(partial_json(dataset, kind, "train").read_text())
    images = {im["id"]: im for im in crops["images"]}
    keys = {"face": ["face_kpts"], "hand42": ["lefthand_kpts", "righthand_kpts"]}[kind]
    errors, shifted = [], []
    for ann in crops["annotations"]:
        image = images[ann["image_id"]]
        if ann["source_id"] != image["source"]["annotation_id"]:
            continue
        crop = read_image(partial_images(dataset, kind, "train") / image["file_name"])
        assert crop.shape == (image["height"], image["width"], 3)
        assert 128 <= crop.shape[0] <= 256
        full = read_image(dataset / "images" / "train" / files[image["source"]["image_id"]])
        for key in keys:
            new = np.asarray(ann[key], dtype=np.float64).reshape(-1, 3)
            old = np.asarray(original[ann["source_id"]][key], dtype=np.float64).reshape(-1, 3)
            ok = new[:, 2] > 0
            if not ok.any():
                continue
            np.testing.assert_array_equal(new[ok, 2], old[ok, 2])
            a = _bilinear(crop, new[ok, :2] - 0.5)
            b = _bilinear(full, old[ok, :2] - 0.5)
            c = _bilinear(full, old[ok, :2] - 0.5 + 3.0)
            errors.append(np.abs(a - b).mean(axis=1))
            shifted.append(np.abs(c - b).mean(axis=1))
    assert errors, f"no {kind} crops"
    error, baseline = float(np.concatenate(errors).mean()), float(np.concatenate(shifted).mean())
    assert error < 12.0, (error, baseline)
    assert error < 0.6 * baseline, (error, baseline)


# ------------------------------------------------------------------------------------------- augmentation
def _dot_sample(rng: np.random.Generator) -> tuple[WholeBodySample, np.ndarray, np.ndarray]:
    """A 200 x 200 grey image with one 7 x 7 coloured dot per keypoint of one person (distinct colours)."""
    image = np.full((200, 200, 3), 128, dtype=np.uint8)
    kpts = np.zeros((1, NUM_BODY135, 3), dtype=np.float32)
    colours = np.zeros((NUM_BODY135, 3), dtype=np.uint8)
    cells = rng.permutation(17 * 17)[:40]
    for j, cell in enumerate(cells):
        x, y = 15 + 10 * (cell % 17), 15 + 10 * (cell // 17)
        colour = rng.integers(0, 256, size=3)
        colour[j % 3] = 255 - colour[j % 3] // 4  # far from the grey background
        image[y - 3 : y + 4, x - 3 : x + 4] = colour
        colours[j * 3] = colour
        kpts[0, j * 3] = (x, y, 2)
    sample = WholeBodySample(
        image_path=Path("dots.png"), image_id=1, size=(200, 200), keypoints=kpts, labeled=np.ones((1, 135), bool),
        boxes=np.array([[10, 10, 190, 190]], np.float32), ignore=(), labeled_parts=KINDS["wholebody"],
    )  # fmt: skip
    return sample, image, colours


def test_identity_augmentation_maps_keypoints_identically() -> None:
    sample, image, _ = _dot_sample(np.random.default_rng(0))
    params = AugmentParams(center=(99.5, 99.5), scale=1.0, rotation=0.0, offset=(0.0, 0.0), flip=False, crop_size=200)
    out = augment(sample, image, params)
    np.testing.assert_allclose(out.matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(out.keypoints, sample.keypoints)
    np.testing.assert_array_equal(out.image, image)


def test_flip_twice_restores_keypoints() -> None:
    sample, image, _ = _dot_sample(np.random.default_rng(1))
    base = AugmentParams(center=(90.0, 105.0), scale=1.3, rotation=20.0, offset=(5.0, -7.0), flip=False, crop_size=160)
    plain = augment(sample, image, base)
    flipped = augment(sample, image, AugmentParams(**{**base.__dict__, "flip": True}))
    assert flipped.flipped
    assert not np.array_equal(flipped.keypoints, plain.keypoints)
    np.testing.assert_allclose(flip_keypoints(flipped.keypoints, 160), plain.keypoints, atol=1e-4)
    assert np.abs(flipped.image[:, ::-1].astype(int) - plain.image.astype(int)).max() <= 1


@pytest.mark.parametrize("flip", [False, True])
def test_affine_warp_keeps_keypoints_on_their_dots(flip: bool) -> None:
    rng = np.random.default_rng(5)
    sample, image, colours = _dot_sample(rng)
    for _ in range(3):
        rotation, scale = float(rng.uniform(-45, 45)), float(rng.uniform(1.0, 1.6))
        params = AugmentParams((100.0, 100.0), scale, rotation, tuple(rng.uniform(-20, 20, 2)), flip, 240)
        out = augment(sample, image, params)
        kpts = out.keypoints[0]
        shown = 0
        for j in np.flatnonzero(kpts[:, 2] > 0):
            x, y = round(kpts[j, 0]), round(kpts[j, 1])
            if not (0 <= x < 240 and 0 <= y < 240):
                continue
            source = BODY135_FLIP_INDEX[j] if flip else j  # after a flip, slot j holds the mirrored point's dot
            assert np.abs(out.image[y, x].astype(int) - colours[source].astype(int)).max() <= 12
            shown += 1
        assert shown >= 20


def test_drawn_params_respect_the_dataset_spec(dataset: Path) -> None:
    spec = synthetic_mix(dataset).datasets[-1]
    source = spec.load()
    fixed = type(spec)(**{**spec.__dict__, "scale_range": (1.0, 1.0), "max_rotation": 0.0, "center_perturb": 0.0,
                         "flip_prob": 0.0})  # fmt: skip
    sample = source[0]
    params = draw_params(sample, fixed, np.random.default_rng(0))
    assert params.rotation == 0
    assert params.offset == (0.0, 0.0)
    assert not params.flip
    heights = sample.boxes[:, 3] - sample.boxes[:, 1]
    assert any(np.isclose(params.scale * h, 0.6 * 480, rtol=0.02) for h in np.minimum(heights, 160))
    for seed in range(20):
        p = draw_params(sample, spec, np.random.default_rng(seed))
        assert abs(p.rotation) <= 45
        assert max(abs(v) for v in p.offset) <= 40


# ------------------------------------------------------------------------------------------------- sampler
def test_mixture_sampler_frequencies_determinism_and_resume() -> None:
    probabilities = [0.6, 0.25, 0.1, 0.05]
    sizes = [7, 3, 5, 2]
    draws = list(islice(MixtureSampler(sizes, probabilities, seed=4), 4300))
    counts = np.bincount([k.dataset for k in draws[:4000]], minlength=4) / 4000
    np.testing.assert_allclose(counts, probabilities, atol=0.025)
    assert draws == list(islice(MixtureSampler(sizes, probabilities, seed=4), 4300))
    assert draws != list(islice(MixtureSampler(sizes, probabilities, seed=5), 4300))
    assert list(islice(MixtureSampler(sizes, probabilities, seed=4, start=4050), 200)) == draws[4050:4250]
    assert list(islice(MixtureSampler(sizes, probabilities, seed=4, start=10), 30)) == draws[10:40]
    first = [k.index for k in draws if k.dataset == 0][:7]  # each dataset's epoch is a permutation
    assert sorted(first) == list(range(7))
    ranks = [list(islice(MixtureSampler(sizes, probabilities, seed=4, rank=r, world_size=2), 50)) for r in (0, 1)]
    assert ranks[0] == draws[0:100:2]
    assert ranks[1] == draws[1:100:2]


# ---------------------------------------------------------------------------------------------- bad input
def test_malformed_files_name_the_file_and_field(dataset: Path, tmp_path: Path) -> None:
    data = _wb(dataset)
    cases = {
        "bbox": lambda d: d["annotations"][1].pop("bbox"),
        "face_kpts": lambda d: d["annotations"][0].__setitem__("face_kpts", [0.0] * 30),
        "image_id": lambda d: d["annotations"][2].pop("image_id"),
    }
    for field, damage in cases.items():
        broken = json.loads(json.dumps(data))
        damage(broken)
        path = tmp_path / f"broken_{field}.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(InputError) as err:
            read_coco_wholebody(path, dataset / "images" / "train")
        assert str(path) in str(err.value)
        assert field in str(err.value)
        assert "annotations[" in str(err.value)
    b135 = json.loads((dataset / "annotations" / "body135_train.json").read_text())
    b135["annotations"][0]["keypoints"] = b135["annotations"][0]["keypoints"][:-3]
    path = tmp_path / "broken_body135.json"
    path.write_text(json.dumps(b135))
    with pytest.raises(InputError, match=r"broken_body135\.json: annotations\[0\] \(id \d+\): keypoints: expected 405"):
        read_body135(path, dataset / "images" / "train")


def test_cli_refuses_to_overwrite(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth-partial", str(dataset), "--kind", "coco_foot"])
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        run(args)
    args = parser.parse_args(["synth-partial", str(dataset), "--kind", "hand", "--overwrite"])
    assert run(args) == 0
    assert "hand42" in capsys.readouterr().out


def test_the_command_line_offers_every_kind_and_alias() -> None:
    from densehuman.data.wholebody import KIND_ALIASES, KINDS

    assert tuple(sorted({*KINDS, *KIND_ALIASES})) == KIND_CHOICES
