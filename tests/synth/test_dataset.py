"""End to end: ``densehuman synth`` output read back with pycocotools and the PNG readers, label by label."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from densehuman.cli import main
from densehuman.data.dense_png import read_inds, read_iuv
from densehuman.synth.annotate import DP_GRID
from densehuman.synth.engine import PARTIAL, SynthJob, _init_worker, _make_one, prepare_folder, run_synth
from densehuman.synth.generator import SynthConfig
from densehuman.synth.writers import CIHP_ROOT

N_IMAGES = 6
CONFIG = SynthConfig(size=(256, 224), max_people=4)


def _job(out: Path, **kw: Any) -> SynthJob:
    args: dict[str, Any] = {"images": N_IMAGES, "seed": 7, "val_fraction": 0.34, "config": CONFIG, "workers": 1}
    args.update(kw)
    return SynthJob(out, **args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    run_synth(_job(out, preview_count=3), progress=False)
    return out


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _splits(root: Path) -> list[str]:
    return [s for s in ("train", "val") if (root / "annotations" / f"densepose_{s}.json").is_file()]


def test_layout_and_manifest(dataset: Path) -> None:
    manifest = json.loads((dataset / "dataset.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["options"]["images"] == N_IMAGES
    counts = manifest["counts"]
    assert counts["train"]["images"] + counts["val"]["images"] == N_IMAGES
    assert counts["val"]["images"] == 2
    assert not (dataset / PARTIAL).exists()
    assert (dataset / "preview.jpg").is_file()
    assert cv2.imread(str(dataset / "preview.jpg")) is not None
    leftovers = [p for p in dataset.rglob("*.tmp")]
    assert leftovers == []
    for split, cihp in (("train", "Training"), ("val", "Validation")):
        ids = (dataset / CIHP_ROOT / f"{split}_id.txt").read_text().split()
        assert len(ids) == counts[split]["images"]
        for stem in ids:
            for sub, ext in (("Images", "jpg"), ("Category_ids", "png"), ("Human_ids", "png"), ("Instance_ids", "png")):
                assert (dataset / CIHP_ROOT / cihp / sub / f"{stem}.{ext}").is_file()


def test_densepose_json_loads_and_points_match_the_maps(dataset: Path) -> None:
    checked_points = 0
    for split in _splits(dataset):
        coco = COCO(str(dataset / "annotations" / f"densepose_{split}.json"))
        assert coco.getCatIds() == [1]
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            stem = Path(info["file_name"]).stem
            chart, u, v = read_iuv(dataset / "dense" / split / f"{stem}_IUV.png")
            inds = read_inds(dataset / "dense" / split / f"{stem}_INDS.png")
            assert chart.shape == (info["height"], info["width"])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert [a["id"] for a in anns] == sorted(a["id"] for a in anns)
            assert int(inds.max()) == len(anns)
            for k, ann in enumerate(anns, start=1):
                mask = coco.annToMask(ann).astype(bool)
                np.testing.assert_array_equal(mask, inds == k)
                assert ann["area"] == mask.sum()
                x, y, w, h = ann["bbox"]
                rows, cols = np.nonzero(mask)
                assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
                assert ann["iscrowd"] == 0
                assert len(ann["keypoints"]) == 51
                if "dp_x" not in ann:
                    continue
                n = len(ann["dp_x"])
                assert 30 <= n <= 14 * 14
                assert all(len(ann[f]) == n for f in ("dp_y", "dp_I", "dp_U", "dp_V"))
                px = np.floor(x + np.array(ann["dp_x"]) * w / DP_GRID).astype(int)
                py = np.floor(y + np.array(ann["dp_y"]) * h / DP_GRID).astype(int)
                assert (inds[py, px] == k).all(), "every DensePose point lies inside its person's mask"
                np.testing.assert_array_equal(chart[py, px], np.array(ann["dp_I"], dtype=np.uint8))
                np.testing.assert_allclose(u[py, px], ann["dp_U"], atol=0.5 / 255 + 1e-6)
                np.testing.assert_allclose(v[py, px], ann["dp_V"], atol=0.5 / 255 + 1e-6)
                # Points per coarse part: at most 14, as the annotators placed them.
                from densehuman.body.charts import FINE_TO_COARSE

                parts = np.asarray(FINE_TO_COARSE)[np.array(ann["dp_I"], dtype=int)]
                assert np.bincount(parts).max() <= 14
                # dp_masks: 14 coarse parts on the 256 grid over the box, together the person's mask.
                assert len(ann["dp_masks"]) == 14
                grid = np.zeros((DP_GRID, DP_GRID), dtype=np.uint8)
                for part, rle in enumerate(ann["dp_masks"], start=1):
                    if rle:
                        assert rle["size"] == [DP_GRID, DP_GRID]
                        grid[mask_utils.decode(rle) > 0] = part
                crop = mask[int(y) : int(y + h), int(x) : int(x + w)].astype(np.uint8)
                small = cv2.resize(crop, (DP_GRID, DP_GRID), interpolation=cv2.INTER_NEAREST) > 0
                iou = ((grid > 0) & small).sum() / ((grid > 0) | small).sum()
                assert iou > 0.97
                checked_points += n
    assert checked_points > 100


def test_keypoint_visibility_agrees_with_the_maps(dataset: Path) -> None:
    visible = hidden = 0
    for split in _splits(dataset):
        coco = COCO(str(dataset / "annotations" / f"coco_wholebody_{split}.json"))
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            inds = read_inds(dataset / "dense" / split / f"{Path(info['file_name']).stem}_INDS.png")
            for k, ann in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=image_id)), start=1):
                parts = ["keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]
                pts = np.concatenate([np.reshape(ann[p], (-1, 3)) for p in parts])
                assert pts.shape == (133, 3)
                assert set(np.unique(pts[:, 2])) <= {0, 1, 2}
                on = pts[:, 2] == 2
                c, r = np.floor(pts[on, 0]).astype(int), np.floor(pts[on, 1]).astype(int)
                assert (inds[r, c] == k).all(), "a visible keypoint's pixel shows its own person"
                assert (pts[pts[:, 2] == 0, :2] == 0).all()
                inside = pts[pts[:, 2] > 0]
                assert ((inside[:, 0] >= 0) & (inside[:, 0] < info["width"])).all()
                assert ann["num_keypoints"] == int((pts[:17, 2] > 0).sum())
                for part, n in (("face", 68), ("lefthand", 21), ("righthand", 21)):
                    kp = np.reshape(ann[f"{part}_kpts"], (-1, 3))
                    assert kp.shape == (n, 3)
                    if not ann[f"{part}_valid"]:
                        assert not kp.any()
                        assert ann[f"{part}_box"] == [0, 0, 0, 0]
                    else:
                        bx, _by, bw, _bh = ann[f"{part}_box"]
                        lab = kp[kp[:, 2] > 0]
                        assert bx <= lab[:, 0].min() + 0.01
                        assert lab[:, 0].max() <= bx + bw + 0.01
                visible += int(on.sum())
                hidden += int((pts[:, 2] == 1).sum())
    assert visible > 50
    assert hidden > 0  # self-occlusion alone hides some keypoints (the far side of a body)


def test_cihp_parsing_maps(dataset: Path) -> None:
    for split, cihp in (("train", "Training"), ("val", "Validation")):
        for stem in (dataset / CIHP_ROOT / f"{split}_id.txt").read_text().split():
            cat = cv2.imread(str(dataset / CIHP_ROOT / cihp / "Category_ids" / f"{stem}.png"), -1)
            human = cv2.imread(str(dataset / CIHP_ROOT / cihp / "Human_ids" / f"{stem}.png"), -1)
            inst = cv2.imread(str(dataset / CIHP_ROOT / cihp / "Instance_ids" / f"{stem}.png"), -1)
            inds = read_inds(dataset / "dense" / split / f"{stem}_INDS.png")
            np.testing.assert_array_equal(human, inds)
            assert cat.max() <= 19
            np.testing.assert_array_equal(cat > 0, human > 0)
            table = (dataset / CIHP_ROOT / cihp / "Instance_ids" / f"{stem}.txt").read_text().split("\n")
            for line in filter(None, table):
                part_id, cls, person = map(int, line.split())
                region = inst == part_id
                assert region.any()
                assert (cat[region] == cls).all()
                assert (human[region] == person).all()


def test_same_seed_same_bytes_and_resume(dataset: Path, tmp_path: Path) -> None:
    # A run interrupted after two images, with a stray temporary file, then resumed with two workers.
    out = tmp_path / "resumed"
    job = _job(out, preview_count=3, workers=2)
    prepare_folder(job, resume=False, overwrite=False)
    _init_worker(job.config, job.seed, out, job.splits())
    for index in (0, 3):
        _make_one(index)
    (out / "images" / "train" / ".000000000002.jpg.1234.tmp").write_bytes(b"half")
    with pytest.raises(ValueError, match="--resume"):
        run_synth(job, progress=False)
    run_synth(job, resume=True, progress=False)
    (out / "images" / "train" / ".000000000002.jpg.1234.tmp").unlink()
    assert _files(out) == _files(dataset)


def test_other_seed_other_images(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "other"
    run_synth(_job(out, images=2, seed=8, preview_count=0), progress=False)
    first = sorted((out / "images").rglob("*.jpg"))[0]
    assert first.read_bytes() != (dataset / "images" / first.relative_to(out / "images")).read_bytes()


def test_bad_options_get_clear_errors(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _job(tmp_path / "a", images=0)
    with pytest.raises(ValueError, match="between 64 and 8192"):
        SynthConfig(size=(32, 512))
    with pytest.raises(ValueError, match="already holds a dataset"):
        run_synth(_job(dataset), progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        run_synth(_job(tmp_path / "full"), progress=False)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
    (tmp_path / "empty_bg").mkdir()
    assert (
        main(["synth", "--out", str(tmp_path / "b"), "--images", "1", "--backgrounds", str(tmp_path / "empty_bg")]) == 2
    )
    assert "empty_bg" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "c"), "--images", "0"]) == 2
    assert "--images" in capsys.readouterr().err
    # A resumed run must use the same options.
    out = tmp_path / "r"
    prepare_folder(_job(out), resume=False, overwrite=False)
    with pytest.raises(ValueError, match="other options"):
        run_synth(_job(out, seed=99), resume=True, progress=False)


def test_cli_with_a_backgrounds_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bg"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        cv2.imwrite(str(folder / f"b{k}.png"), rng.integers(0, 255, size=(300, 400, 3), dtype=np.uint8))
    out = tmp_path / "ds"
    args = ["synth", "--out", str(out), "--images", "2", "--size", "128", "96", "--workers", "1", "--quiet"]
    assert main([*args, "--backgrounds", str(folder), "--preview-count", "0"]) == 0
    assert "2 images generated" in capsys.readouterr().out
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["options"]["backgrounds"] == str(folder.resolve())
    image = cv2.imread(str(next((out / "images").rglob("*.jpg"))))
    assert image.shape == (128, 96, 3)
    # The preview mode reads the dataset back and draws the contact sheet.
    assert main(["synth", "--preview", str(out)]) == 0
    assert cv2.imread(str(out / "preview.jpg")).shape[1] == 6 * 256


@pytest.mark.slow
def test_two_hundred_images_pass_every_check(tmp_path: Path) -> None:
    """The issue's acceptance run: ``densehuman synth --out DIR --images 200`` (about 30 s on 2 cores)."""
    out = tmp_path / "ds200"
    assert main(["synth", "--out", str(out), "--images", "200", "--quiet"]) == 0
    test_layout_and_manifest_counts = json.loads((out / "dataset.json").read_text())["counts"]
    assert sum(c["images"] for c in test_layout_and_manifest_counts.values()) == 200
    test_densepose_json_loads_and_points_match_the_maps(out)
    test_keypoint_visibility_agrees_with_the_maps(out)
    test_cihp_parsing_maps(out)
