"""The DensePose training input pipeline: reader, transforms (flip consistency above all), samplers, loaders."""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from densehuman.body.charts import MASK_LABEL_SYMMETRIES, POINT_LABEL_SYMMETRIES
from densehuman.body.surface import BodySurface, SurfacePoints
from densehuman.data.dense_png import read_inds, read_iuv
from densehuman.data.densepose_coco import DensePoseCocoDataset, DensePoseSample, decode_dp_masks, synthetic_split
from densehuman.data.loader import (
    InferenceSampler,
    SampleKey,
    TrainingSampler,
    build_test_loader,
    build_train_loader,
    collate,
)
from densehuman.data.transforms import (
    ColorJitter,
    MirrorUV,
    RandomFlip,
    ResizeShortestEdge,
    UVSymmetry,
    apply_transforms,
    inference_transforms,
    train_transforms,
)
from densehuman.models.instances import DensePoseTarget
from densehuman.synth.annotate import AnnotationConfig
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig

FLIP = RandomFlip(prob=1.0)
# Small people at 128 x 128: lower the area a person needs for DensePose points so that most get them.
CONFIG = SynthConfig(size=(128, 128), max_people=3, annotation=AnnotationConfig(dp_min_area=150))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dp_data") / "synth"
    job = SynthJob(out, images=4, val_fraction=0.25, config=CONFIG, workers=1, preview_count=0)
    run_synth(job, progress=False)
    return out


@pytest.fixture(scope="module")
def train(root: Path) -> DensePoseCocoDataset:
    return synthetic_split(root, "train")


def _json(root: Path, split: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "annotations" / f"densepose_{split}.json").read_text())
    return data


def _with_densepose(ds: DensePoseCocoDataset) -> list[DensePoseSample]:
    return [s for s in (ds[k] for k in range(len(ds))) if any(d is not None for d in s.targets.densepose)]


def _dp(sample: DensePoseSample) -> list[DensePoseTarget]:
    return [d for d in sample.targets.densepose if d is not None]


# ------------------------------------------------------------------------------------------------ reader
@pytest.mark.parametrize("split", ["train", "val"])
def test_reader_reproduces_the_json(root: Path, split: str) -> None:
    data = _json(root, split)
    ds = synthetic_split(root, split)
    assert len(ds) == len(data["images"])
    assert ds.categories == ((1, "person"),)
    anns = {a["id"]: a for a in data["annotations"]}
    n_dp = n_plain = 0
    for k in range(len(ds)):
        s = ds[k]
        info = next(im for im in data["images"] if im["id"] == s.image_id)
        assert s.file_name == root / "images" / split / info["file_name"]
        bgr = cv2.imread(str(s.file_name))
        np.testing.assert_array_equal(s.image, bgr[..., ::-1])  # RGB, not BGR
        pil = np.asarray(Image.open(s.file_name).convert("RGB"), dtype=np.float32)
        assert np.abs(pil - s.image).mean() < 2.0  # another decoder agrees on the channel order
        assert s.meta["orig_size"] == (info["height"], info["width"]) == s.size
        assert list(s.annotation_ids) == sorted(a["id"] for a in anns.values() if a["image_id"] == s.image_id)
        t = s.targets
        assert t.classes.tolist() == [0] * len(s.annotation_ids)
        assert t.crowd is not None
        assert not t.crowd.any()
        for j, aid in enumerate(s.annotation_ids):
            a = anns[aid]
            x, y, w, h = a["bbox"]
            np.testing.assert_allclose(t.boxes[j].numpy(), [x, y, x + w, y + h])
            d = t.densepose[j]
            if "dp_x" not in a:
                assert d is None
                n_plain += 1
                continue
            assert d is not None
            assert d.segm is not None
            n_dp += 1
            np.testing.assert_array_equal(d.box.numpy(), t.boxes[j].numpy())
            for got, key in ((d.x, "dp_x"), (d.y, "dp_y"), (d.u, "dp_U"), (d.v, "dp_V")):
                np.testing.assert_array_equal(got.numpy(), np.asarray(a[key], dtype=np.float32))
            assert d.i.dtype == torch.int64
            assert d.i.tolist() == [int(i) for i in a["dp_I"]]
            # segm: the union of the parts, each pixel labelled with the last part covering it
            parts = np.stack([mask_utils.decode(m) if m else np.zeros((256, 256), np.uint8) for m in a["dp_masks"]])
            segm = d.segm.numpy()
            assert segm.shape == (256, 256)
            assert d.segm.dtype == torch.int64
            np.testing.assert_array_equal(segm > 0, parts.any(0))
            for part in range(1, 15):
                on = segm == part
                assert parts[part - 1][on].all()
                assert not parts[part:, on].any()
    assert n_dp > 0
    assert split == "val" or n_plain > 0


def test_overlapping_dp_masks_later_parts_win() -> None:
    def rle(mask: np.ndarray) -> dict[str, Any]:
        out = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": out["size"], "counts": out["counts"].decode()}

    torso, head = np.ones((256, 256), bool), np.zeros((256, 256), bool)
    head[:100, 50:200] = True
    masks: list[Any] = [rle(torso)] + [[]] * 12 + [rle(head)]
    label = decode_dp_masks(masks)
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, np.where(head, 14, 1))
    masks[0] = {"size": [256, 256], "counts": [0, 256 * 256]}  # uncompressed RLE: all on
    np.testing.assert_array_equal(decode_dp_masks(masks), np.where(head, 14, 1))


def test_filters_keep_images_with_densepose_or_boxes(root: Path) -> None:
    data = _json(root, "train")
    with_dp = {a["image_id"] for a in data["annotations"] if "dp_x" in a}
    ds = synthetic_split(root, "train", require_densepose_images=True)
    assert set(ds.image_ids) == with_dp
    assert len(synthetic_split(root, "train", skip_empty=True)) == len({a["image_id"] for a in data["annotations"]})
    with pytest.raises(FileNotFoundError, match="splits there: train, val"):
        synthetic_split(root, "test")


# ------------------------------------------------------------------------------------------------- flips
def test_flip_twice_is_the_identity(train: DensePoseCocoDataset) -> None:
    for s in _with_densepose(train):
        once = FLIP(s, np.random.default_rng(0))
        twice = FLIP.flip(once)
        assert once.meta["flipped"]
        assert not twice.meta["flipped"]
        assert not np.array_equal(once.image, s.image)
        np.testing.assert_array_equal(twice.image, s.image)
        np.testing.assert_array_equal(twice.targets.boxes.numpy(), s.targets.boxes.numpy())
        for a, b, c in zip(_dp(s), _dp(once), _dp(twice), strict=True):
            assert not torch.equal(a.i, b.i)  # lateral charts swap sides
            np.testing.assert_array_equal(b.x.numpy(), 256 - a.x.numpy())
            np.testing.assert_array_equal(c.box.numpy(), a.box.numpy())
            np.testing.assert_allclose(c.x.numpy(), a.x.numpy(), atol=1e-4)
            for f in ("y", "i", "v", "segm"):
                assert torch.equal(getattr(c, f), getattr(a, f)), f
            np.testing.assert_allclose(c.u.numpy(), a.u.numpy(), atol=1e-6)


def test_flip_draws_from_the_generator() -> None:
    flip = RandomFlip(prob=0.5)
    draws = [flip.prob > np.random.default_rng([5, k]).random() for k in range(64)]
    assert 10 < sum(draws) < 54
    assert not flip.deterministic
    assert RandomFlip(1.0).deterministic
    with pytest.raises(ValueError, match="involution"):
        RandomFlip(chart_permutation=[0, *range(2, 25), 1])


def test_flipped_points_read_the_mirrored_iuv_and_instance_maps(root: Path, train: DensePoseCocoDataset) -> None:
    """The flipped annotation names what a mirrored body shows at the flipped point's pixel: the IUV PNG flipped,
    its charts permuted and U -> 1 - U (the renderer's labelling of a mirrored body, see the next test)."""
    perm = np.asarray(POINT_LABEL_SYMMETRIES)
    checked = 0
    for s in _with_densepose(train):
        chart, u, v = read_iuv(root / "dense" / "train" / f"{s.image_id:012d}_IUV.png")
        inds = read_inds(root / "dense" / "train" / f"{s.image_id:012d}_INDS.png")
        mirrored = (perm[chart[:, ::-1]], np.where(chart > 0, 1.0 - u, 0.0)[:, ::-1], v[:, ::-1], inds[:, ::-1])
        for sample, (c_map, u_map, v_map, i_map) in ((s, (chart, u, v, inds)), (FLIP.flip(s), mirrored)):
            for k, d in enumerate(sample.targets.densepose):
                if d is None:
                    continue
                x0, y0, x1, y1 = d.box.tolist()
                col = np.floor(x0 + d.x.numpy() * (x1 - x0) / 256).astype(int)
                row = np.floor(y0 + d.y.numpy() * (y1 - y0) / 256).astype(int)
                assert (i_map[row, col] == k + 1).all()  # the point lies on its own person
                np.testing.assert_array_equal(c_map[row, col], d.i.numpy())
                np.testing.assert_allclose(u_map[row, col], d.u.numpy(), atol=0.5 / 255 + 1e-5)
                np.testing.assert_allclose(v_map[row, col], d.v.numpy(), atol=0.5 / 255 + 1e-5)
                checked += d.x.numel()
    assert checked > 200


def test_uv_flip_lands_on_the_mirror_point_of_the_body(surface: BodySurface, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = SurfacePoints(rng.integers(0, surface.faces.shape[0], 3000), rng.dirichlet([1.0, 1.0, 1.0], 3000))
    i, u, v = surface.chart_coordinates(points)
    mi, mu, mv = surface.chart_coordinates(surface.mirror_points(points))
    target = DensePoseTarget(
        box=torch.tensor([10.0, 0.0, 30.0, 40.0]),
        x=torch.full((i.size,), 64.0),
        y=torch.full((i.size,), 32.0),
        i=torch.from_numpy(i),
        u=torch.from_numpy(u.astype(np.float32)),
        v=torch.from_numpy(v.astype(np.float32)),
    )
    flipped = FLIP.flip_target(target, width=100)
    np.testing.assert_array_equal(flipped.i.numpy(), mi)
    np.testing.assert_allclose(flipped.u.numpy(), mu, atol=1e-5)
    np.testing.assert_allclose(flipped.v.numpy(), mv, atol=1e-5)
    np.testing.assert_array_equal(flipped.box.numpy(), [70.0, 0.0, 90.0, 40.0])
    np.testing.assert_array_equal(flipped.x.numpy(), 192.0)
    # The official table form: built from the surface, or read from a UV_symmetry_transforms.mat
    u_t, v_t = surface.uv_symmetry_transforms()
    cells = {k: np.empty((1, 24), dtype=object) for k in ("U_transforms", "V_transforms")}
    for c in range(24):
        cells["U_transforms"][0, c], cells["V_transforms"][0, c] = u_t[c].astype(np.float64), v_t[c].astype(np.float64)
    scipy.io.savemat(tmp_path / "UV_symmetry_transforms.mat", cells)
    for table in (UVSymmetry.from_body_surface(surface), UVSymmetry.load(tmp_path / "UV_symmetry_transforms.mat")):
        tu, tv = table(i, u, v)
        np.testing.assert_allclose(tu, 1.0 - np.floor(u * 255) / 255, atol=1e-6)  # quantized like the official code
        np.testing.assert_allclose(tv, np.floor(v * 255) / 255, atol=1e-6)
        mu2, mv2 = MirrorUV()(i, u, v)
        assert np.abs(tu - mu2).max() <= 1 / 255 + 1e-6
        assert np.abs(tv - mv2).max() <= 1 / 255 + 1e-6
    scipy.io.savemat(tmp_path / "bad.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="no 'U_transforms'"):
        UVSymmetry.load(tmp_path / "bad.mat")


def test_flip_relabels_the_coarse_mask() -> None:
    segm = torch.zeros(256, 256, dtype=torch.int64)
    segm[:, :10] = 2  # right hand at the box's left edge
    segm[:, 100:110] = 1
    empty = torch.zeros(0)
    d = DensePoseTarget(
        torch.tensor([0.0, 0, 8, 8]), empty, empty, torch.zeros(0, dtype=torch.int64), empty, empty, segm
    )
    out = FLIP.flip_target(d, width=8).segm
    assert out is not None
    assert (out[:, -10:] == MASK_LABEL_SYMMETRIES[2]).all()
    assert (out[:, 146:156] == 1).all()
    assert int((out > 0).sum()) == int((segm > 0).sum())


# -------------------------------------------------------------------------------------- resize and colour
def test_resize_scales_boxes_and_keeps_points_box_relative(train: DensePoseCocoDataset) -> None:
    s = _with_densepose(train)[0]
    out = ResizeShortestEdge((200,), max_size=1333)(s, np.random.default_rng(0))
    assert out.size == (200, 200)
    assert out.image.dtype == np.uint8
    assert out.meta["orig_size"] == (128, 128)
    np.testing.assert_allclose(out.targets.boxes.numpy(), s.targets.boxes.numpy() * 200 / 128, rtol=1e-6)
    for a, b in zip(_dp(s), _dp(out), strict=True):
        np.testing.assert_allclose(b.box.numpy(), a.box.numpy() * 200 / 128, rtol=1e-6)
        for f in ("x", "y", "i", "u", "v", "segm"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
        # the same point of the picture: image coordinates scale with the image
        x_img = lambda d: d.box[0] + d.x * (d.box[2] - d.box[0]) / 256  # noqa: E731
        np.testing.assert_allclose(x_img(b).numpy(), x_img(a).numpy() * 200 / 128, rtol=1e-5)
    assert ResizeShortestEdge((800,), max_size=300)(s, np.random.default_rng(0)).size == (300, 300)
    resize = ResizeShortestEdge((640, 800), sample="range")
    assert resize.output_size(480, 640, 800) == (800, 1067)
    assert resize.output_size(480, 1280, 800) == (500, 1333)
    sizes = {resize(s, np.random.default_rng(k)).size[0] for k in range(20)}
    assert len(sizes) > 5
    assert min(sizes) >= 640
    assert max(sizes) <= 800
    assert resize(s, np.random.default_rng(3)).size == resize(s, np.random.default_rng(3)).size


def test_color_jitter_changes_only_the_image(train: DensePoseCocoDataset) -> None:
    s = train[0]
    jitter = ColorJitter(0.4, 0.4, 0.4)
    a, b = jitter(s, np.random.default_rng(1)), jitter(s, np.random.default_rng(1))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == s.image.shape
    assert np.abs(a.image.astype(int) - s.image).mean() > 1
    assert a.targets is s.targets
    assert ColorJitter()(s, np.random.default_rng(1)) is s
    assert ColorJitter().deterministic
    gray = np.full((4, 4, 3), 100, np.uint8)
    out = ColorJitter(saturation=0.9)(DensePoseSample(gray, 0, Path("x"), s.targets, ()), np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, gray)  # saturation leaves gray alone


# ----------------------------------------------------------------------------------------------- samplers
def _take(sampler: TrainingSampler, n: int) -> list[int]:
    return [k.index for k in itertools.islice(sampler, n)]


def test_training_sampler_ranks_seeds_and_resume() -> None:
    r0, r1 = (TrainingSampler(10, seed=3, rank=r, world_size=2) for r in (0, 1))
    a, b = _take(r0, 10), _take(r1, 10)
    for epoch in (slice(0, 5), slice(5, 10)):  # each epoch split between the ranks, disjoint, complete
        assert not set(a[epoch]) & set(b[epoch])
        assert sorted(a[epoch] + b[epoch]) == list(range(10))
    assert a == _take(TrainingSampler(10, seed=3, rank=0, world_size=2), 10)
    assert a != _take(TrainingSampler(10, seed=4, rank=0, world_size=2), 10)
    assert _take(TrainingSampler(10, seed=3, rank=0, world_size=2, start=7), 13) == _take(r0, 20)[7:]
    assert _take(TrainingSampler(4, shuffle=False), 6) == [0, 1, 2, 3, 0, 1]
    positions = [k.position for k in itertools.islice(TrainingSampler(10, rank=1, world_size=3), 3)]
    assert positions == [1, 4, 7]
    shards = [list(InferenceSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert [k.index for shard in shards for k in shard] == list(range(10))
    with pytest.raises(ValueError, match="rank"):
        TrainingSampler(10, rank=2, world_size=2)


def _batches(loader: Any, n: int) -> list[tuple[list[int], list[bool], list[np.ndarray]]]:
    out = []
    for images, _, meta in itertools.islice(iter(loader), n):
        out.append(([m["image_id"] for m in meta], [m["flipped"] for m in meta], [im.numpy() for im in images]))
    return out


def test_train_loader_is_reproducible_across_workers_and_resumes(train: DensePoseCocoDataset) -> None:
    transforms = train_transforms(short_edges=(96, 128, 160), max_size=200, color=(0.2, 0.2, 0.2))
    kw: dict[str, Any] = {"batch_size": 2, "seed": 11, "distributed": False}
    full = _batches(build_train_loader(train, transforms, num_workers=0, **kw), 5)
    assert len({i for ids, _, _ in full for i in ids}) == len(train)
    assert {f for _, flips, _ in full for f in flips} == {True, False}
    assert len({im.shape for _, _, ims in full for im in ims}) > 1
    resumed = _batches(build_train_loader(train, transforms, num_workers=2, start_iter=2, **kw), 3)
    for (ids_a, fl_a, im_a), (ids_b, fl_b, im_b) in zip(full[2:], resumed, strict=True):
        assert ids_a == ids_b
        assert fl_a == fl_b
        for x, y in zip(im_a, im_b, strict=True):
            np.testing.assert_array_equal(x, y)
    ranks = [
        _batches(build_train_loader(train, transforms, num_workers=0, rank=r, world_size=2, **kw), 1) for r in (0, 1)
    ]
    assert not set(ranks[0][0][0]) & set(ranks[1][0][0])
    with pytest.raises(ValueError, match=r"torch\.distributed"):
        build_train_loader(train, transforms, 2, 0, 0, distributed=True)


def test_collate_and_test_loader(train: DensePoseCocoDataset) -> None:
    images, targets, meta = collate([train[0], train[1]])
    assert images[0].shape == (3, 128, 128)
    assert images[0].dtype == torch.uint8
    np.testing.assert_array_equal(images[0].permute(1, 2, 0).numpy(), train[0].image)
    assert targets[1] is not None
    assert meta[1]["image_id"] == train.image_ids[1]
    assert meta[0]["size"] == meta[0]["orig_size"] == (128, 128)
    assert meta[0]["position"] is None
    loader = build_test_loader(train, inference_transforms(160, 1333), batch_size=2)
    got = [(m["image_id"], m["size"], m["flipped"]) for _, _, meta in loader for m in meta]
    assert got == [(i, (160, 160), False) for i in train.image_ids]
    with pytest.raises(ValueError, match="deterministic"):
        build_test_loader(train, train_transforms())
    sample = apply_transforms([FLIP, FLIP, ResizeShortestEdge((64,))], train[0], np.random.default_rng(0))
    assert sample.size == (64, 64)
    assert not sample.meta["flipped"]
    assert SampleKey(3, 1).index == 1


# ------------------------------------------------------------------------------------------------ bad files
@pytest.fixture
def copy_split(root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(root / "images", out / "images")
    shutil.copytree(root / "annotations", out / "annotations", ignore=shutil.ignore_patterns("coco_*", "body*"))
    return out


def _rewrite(root: Path, edit: Any) -> Path:
    path = root / "annotations" / "densepose_train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_bad_images_are_named(copy_split: Path) -> None:
    ds = synthetic_split(copy_split, "train")
    first, second = (copy_split / "images" / "train" / f"{ds.image_ids[k]:012d}.jpg" for k in (0, 1))
    first.unlink()
    with pytest.raises(ValueError, match=f"{re.escape(str(first))}: image file missing"):
        ds[0]
    second.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=f"{re.escape(str(second))}: not a readable image"):
        ds[1]
    cv2.imwrite(str(first), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match=f"{re.escape(str(first))}: image is 20 x 30 but"):
        ds[0]


def _first_dp(data: dict[str, Any]) -> dict[str, Any]:
    ann: dict[str, Any] = next(a for a in data["annotations"] if "dp_x" in a)
    return ann


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: _first_dp(d).update(dp_I=[30.0] * len(_first_dp(d)["dp_I"])),
            r"dp_I: element 0 is 30, outside \[1, 24\]",
        ),
        (lambda d: _first_dp(d)["dp_U"].pop(), "differ in length"),
        (
            lambda d: _first_dp(d).update(dp_x=[300.0] * len(_first_dp(d)["dp_x"])),
            r"dp_x: element 0 is 300, outside \[-0.001, 256.001\]",
        ),
        (lambda d: _first_dp(d).update(dp_V="0.5"), "dp_V: expected a list of numbers"),
        (lambda d: _first_dp(d).pop("dp_y"), "dp_y: missing"),
        (lambda d: _first_dp(d)["dp_masks"].pop(), "dp_masks: expected a list of 14"),
        (lambda d: _first_dp(d).update(bbox=[1, 2, 3]), r"bbox: expected 4 numbers \[x, y, w, h\]"),
        (lambda d: _first_dp(d).update(category_id=2), "category_id: 2 is not a category"),
        (lambda d: _first_dp(d).update(image_id=999), "image_id: 999 is not the id of an image"),
    ],
)
def test_bad_fields_name_the_file_and_annotation(copy_split: Path, edit: Any, message: str) -> None:
    data = json.loads((copy_split / "annotations" / "densepose_train.json").read_text())
    aid = _first_dp(data)["id"]
    path = _rewrite(copy_split, edit)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: annotations\[\d+\] \(id {aid}\): .*{message}"):
        synthetic_split(copy_split, "train")


def test_bad_json_and_other_layouts(copy_split: Path, tmp_path: Path) -> None:
    path = copy_split / "annotations" / "densepose_train.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: not valid JSON"):
        synthetic_split(copy_split, "train")
    with pytest.raises(FileNotFoundError, match="no annotation file"):
        DensePoseCocoDataset(tmp_path / "none.json", copy_split)
    # A hand-made file: two categories mapped to 0, 1; a crowd box; a zero-width box dropped; a COCO-style folder
    cv2.imwrite(str(tmp_path / "COCO_train2014_000000000042.jpg"), np.zeros((40, 50, 3), np.uint8))
    data = {
        "images": [{"id": 42, "file_name": "COCO_train2014_000000000042.jpg", "height": 40, "width": 50}],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 7, "image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 1},
            {"id": 5, "image_id": 42, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0, "dp_x": [128.0],
             "dp_y": [0.0], "dp_I": [24], "dp_U": [0.25], "dp_V": [1.0]},
            {"id": 6, "image_id": 42, "category_id": 1, "bbox": [5, 5, 0, 10], "iscrowd": 0},
        ],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(data))
    s = DensePoseCocoDataset(tmp_path / "ann.json", tmp_path)[0]
    assert s.annotation_ids == (5, 7)
    assert s.targets.classes.tolist() == [0, 1]
    assert s.targets.crowd is not None
    assert s.targets.crowd.tolist() == [False, True]
    d = s.targets.densepose[0]
    assert d is not None
    assert d.segm is None
    assert d.i.tolist() == [24]
    assert s.targets.densepose[1] is None
    flipped = FLIP(copy.deepcopy(s), np.random.default_rng(0))
    fd = flipped.targets.densepose[0]
    assert fd is not None
    assert fd.i.tolist() == [23]
    assert fd.u.tolist() == [0.75]
    assert fd.x.tolist() == [128.0]
    np.testing.assert_array_equal(flipped.targets.boxes.numpy(), [[40, 0, 50, 10], [46, 2, 49, 6]])
