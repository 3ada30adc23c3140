"""Human-parsing evaluation against hand-computed answers, one test per quirk of the official code.

Ground truths are tiny CIHP (or MHP) splits written by hand: an image is a list of full-image person label maps
(CIHP: Category_ids paints them, Human_ids numbers them 1..K, Instance_ids has one part per (person, class)).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from densehuman import atomic
from densehuman.cli import main
from densehuman.data.parsing_folders import open_parsing_split
from densehuman.evaluation.parsing import ParsingEvaluation, format_parsing_report
from densehuman.evaluation.parsing_metrics import (
    PersonTruth,
    class_iou,
    fast_hist,
    part_ap,
    person_ious,
    region_ap,
    voc_ap,
)
from densehuman.evaluation.parsing_results import (
    ParsingDetection,
    load_parsing_results,
    parsing_results_from_split,
    save_parsing_results,
)
from densehuman.validation import InputError

People = list[np.ndarray]


def write_cihp(root: Path, images: list[People], parts: bool = True) -> Path:
    """A CIHP val split of ``images`` (disjoint people); returns the split folder."""
    folder = root / "instance-level_human_parsing" / "Validation"
    names = [f"img{i + 1}" for i in range(len(images))]
    for name, people in zip(names, images, strict=True):
        category = np.zeros(people[0].shape, np.uint8)
        human = np.zeros_like(category)
        instance, lines = np.zeros_like(category), []
        for k, labels in enumerate(people, start=1):
            category[labels > 0], human[labels > 0] = labels[labels > 0], k
            for c in np.unique(labels[labels > 0]):
                instance[labels == c] = len(lines) + 1
                lines.append(f"{len(lines) + 1} {c} {k}")
        atomic.write_image(folder / "Images" / f"{name}.jpg", np.zeros((*category.shape, 3), np.uint8))
        atomic.write_image(folder / "Category_ids" / f"{name}.png", category)
        atomic.write_image(folder / "Human_ids" / f"{name}.png", human)
        if parts:
            atomic.write_image(folder / "Instance_ids" / f"{name}.png", instance)
            atomic.write_bytes(folder / "Instance_ids" / f"{name}.txt", ("\n".join(lines) + "\n").encode())
    (folder.parent / "val_id.txt").write_text("\n".join(names) + "\n")
    return folder


def write_mhp(root: Path, images: list[People]) -> Path:
    """An MHP v2.0 val split (one file per person, people may overlap); returns the split folder."""
    folder = root / "LV-MHP-v2" / "val"
    names = [f"img{i + 1}" for i in range(len(images))]
    for name, people in zip(names, images, strict=True):
        atomic.write_image(folder / "images" / f"{name}.jpg", np.zeros((*people[0].shape, 3), np.uint8))
        for k, labels in enumerate(people, start=1):
            atomic.write_image(folder / "parsing_annos" / f"{name}_{len(people):02d}_{k:02d}.png", labels)
    (root / "LV-MHP-v2" / "list").mkdir(parents=True, exist_ok=True)
    (root / "LV-MHP-v2" / "list" / "val.txt").write_text("\n".join(names) + "\n")
    return folder


def det(x: int, y: int, grid: list[list[int]], score: float, image_id: int = 1) -> ParsingDetection:
    labels = np.array(grid, np.uint8)
    return ParsingDetection(image_id, 1, (x, y, labels.shape[1], labels.shape[0]), score, labels)


def evaluate(folder: Path, detections: list[ParsingDetection]) -> dict:
    return ParsingEvaluation(open_parsing_split(folder), detections).run()


def person(shape: tuple[int, int], cells: dict[tuple[int, int], int]) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    for (r, c), v in cells.items():
        labels[r, c] = v
    return labels


# Image A (4 x 4), one person:   GT   0 0 0 0     detection at (1, 1):  1 1
#                                     0 1 1 0                            2 1
#                                     0 2 2 0
#                                     0 0 0 0
A = person((4, 4), {(1, 1): 1, (1, 2): 1, (2, 1): 2, (2, 2): 2})
A_DET = [[1, 1], [2, 1]]
# Image B (4 x 6), two people of class 1: P1 rows 0-1 x cols 0-1, P2 rows 0-1 x cols 3-4.
P1 = person((4, 6), {(r, c): 1 for r in (0, 1) for c in (0, 1)})
P2 = person((4, 6), {(r, c): 1 for r in (0, 1) for c in (3, 4)})
SQUARE = [[1, 1], [1, 1]]


def test_known_answer_one_person(tmp_path: Path) -> None:
    figures = evaluate(write_cihp(tmp_path, [[A]]), [det(1, 1, A_DET, 0.9)])
    # hist[gt, pred]: [0,0] = 12, [1,1] = 2, [2,2] = 1, [2,1] = 1.
    # IoU: bg 12 / 12 = 1, class 1: 2 / (2 + 3 - 2) = 2/3, class 2: 1 / (2 + 1 - 1) = 1/2; the 17 classes in
    # neither map are NaN and skipped: mIoU = (1 + 2/3 + 1/2) / 3 = 13/18, background included (without it 7/12).
    assert figures["mIoU"] == pytest.approx(13 / 18)
    assert figures["pixel_acc"] == pytest.approx(15 / 16)
    assert figures["mean_acc"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    ious = [row["IoU"] for row in figures["per_class_IoU"]]
    assert ious[:3] == pytest.approx([1, 2 / 3, 1 / 2])
    assert ious[3:] == [None] * 17
    assert figures["per_class_IoU"][0]["class"] == "Background"
    # APp: the person map is the global map, mean part IoU 13/18 = 0.72 > t up to t = 0.7: AP 1, then 0. At 0.6 and
    # 0.7 the match exists only because background counts in the mean (7/12 = 0.58 without it).
    assert figures["APp"] == pytest.approx([1] * 7 + [0, 0])
    assert figures["APp50"] == 1.0
    assert figures["APp_vol"] == pytest.approx(7 / 9)
    # PCP: 2 GT parts; at 0.4 both IoUs exceed it; at 0.5 only class 1 (class 2's IoU is exactly 0.5: strict >).
    assert figures["PCP"][3] == pytest.approx(1.0)
    assert figures["PCP50"] == pytest.approx(1 / 2)
    assert figures["PCP"][5] == pytest.approx(1 / 2)  # 2/3 > 0.6
    assert figures["PCP"][6] == 0.0  # matched at 0.7, but no part IoU exceeds 0.7
    assert figures["gt_people"] == 1
    assert "mIoU   72.22" in format_parsing_report(figures)


def test_duplicates_are_false_positives_with_no_fallback(tmp_path: Path) -> None:
    folder = write_cihp(tmp_path, [[P1, P2]])
    # a and b copy P1 (mean IoU 1), c copies P2. b against P2 has mean IoU (2/3 + 0) / 2 = 1/3 > 0.1, but only the
    # best GT is tried: b is an FP at every threshold. tp 1 0 1, fp 0 1 0, npos 2: rec .5 .5 1, prec 1 .5 2/3;
    # the envelope is 1 1 2/3 2/3 0 and AP = .5 * 1 + .5 * 2/3 = 5/6 (a fallback would give 1 at t <= 0.3).
    figures = evaluate(folder, [det(0, 0, SQUARE, 0.9), det(0, 0, SQUARE, 0.8), det(3, 0, SQUARE, 0.7)])
    assert figures["APp"] == pytest.approx([5 / 6] * 9)
    assert figures["PCP50"] == pytest.approx(1.0)
    assert figures["mIoU"] == pytest.approx(1.0)


def test_detections_scoring_below_0001_are_ignored(tmp_path: Path) -> None:
    folder = write_cihp(tmp_path, [[P1, P2]])
    # c (score 0.0005) would be a TP on P2; skipped, P2 stays unmatched: tp 1 0 0, fp 0 1 0 -> rec .5 .5 .5,
    # prec 1 .5 .5, AP = .5; PCP50 = (1 + 0) / 2.
    figures = evaluate(folder, [det(0, 0, SQUARE, 0.9), det(0, 0, SQUARE, 0.8), det(3, 0, SQUARE, 0.0005)])
    assert figures["APp50"] == pytest.approx(0.5)
    assert figures["PCP50"] == pytest.approx(0.5)
    # In the kernel it keeps its place in the arrays with neither TP nor FP.
    result = part_ap(
        np.array([0.9, 0.0005]), np.array([1.0, 1.0]), np.array([0, 1]), np.ones((2, 2)), np.array([1, 1]), 2
    )
    assert result.tp.shape == (9, 2)
    assert result.tp[:, 1].sum() == result.fp[:, 1].sum() == 0
    assert result.ap[4] == pytest.approx(0.5)


@pytest.mark.parametrize(("dataset", "score", "miou"), [("cihp", 0.1, 1 / 4), ("cihp", 0.3, 1.0), ("mhp", 0.1, 1.0)])
def test_miou_map_keeps_scores_from_the_dataset_threshold(
    tmp_path: Path, dataset: str, score: float, miou: float
) -> None:
    folder = (write_cihp if dataset == "cihp" else write_mhp)(tmp_path, [[A]])
    # An exact copy of the person. CIHP skips scores under 0.3 (MHP under 0.05) in the mIoU map: an empty map
    # gives bg IoU 12 / 16 and 0 for both parts, mIoU 1/4. APp uses every score >= 0.001.
    figures = evaluate(folder, [det(1, 1, [[1, 1], [2, 2]], score)])
    assert figures["dataset"] == dataset
    assert figures["mIoU"] == pytest.approx(miou)
    assert figures["APp50"] == pytest.approx(1.0)


@pytest.mark.parametrize("high_first", [True, False])
def test_higher_scores_overwrite_lower_ones(tmp_path: Path, high_first: bool) -> None:
    folder = write_cihp(tmp_path, [[A]])
    right, wrong = det(1, 1, [[1, 1], [2, 2]], 0.9), det(1, 1, [[2, 2], [2, 2]], 0.5)
    # painted by ascending score whatever the file order: the right labels end on top
    figures = evaluate(folder, [right, wrong] if high_first else [wrong, right])
    assert figures["mIoU"] == pytest.approx(1.0)


def test_nan_classes_are_skipped_and_predicted_only_classes_count(tmp_path: Path) -> None:
    folder = write_cihp(tmp_path, [[A]])
    # Detection at (1, 1): 1 1 3 / 2 2 0. Class 3 on one GT background pixel: bg 11 / 12, classes 1, 2: 1, class 3:
    # 0 / 1 = 0 (counted), the other 16 classes NaN (skipped): mIoU = (11/12 + 1 + 1 + 0) / 4 = 35/48.
    figures = evaluate(folder, [det(1, 1, [[1, 1, 3], [2, 2, 0]], 0.9)])
    assert figures["mIoU"] == pytest.approx(35 / 48)
    assert figures["per_class_IoU"][3]["IoU"] == 0.0
    assert figures["per_class_IoU"][4]["IoU"] is None


def test_voc_all_point_interpolation() -> None:
    # TP FP FP TP TP with 3 GT: rec 1/3 1/3 1/3 2/3 1, prec 1 1/2 1/3 1/2 3/5. The envelope raises the precision
    # at recall 2/3 from 1/2 to 3/5: AP = (1 + 3/5 + 3/5) / 3 = 11/15 (0.7 without the envelope).
    rec, prec = np.array([1, 1, 1, 2, 3]) / 3, np.array([1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert voc_ap(rec, prec) == pytest.approx(11 / 15)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0  # nothing predicted: AP 0
    assert np.isnan(voc_ap(np.array([np.nan]), np.array([0.0])))  # no GT at all: NaN
    # The same sequence through the matching: a duplicate of GT 0, an FP with mean IoU 0.2 at t = 0.5.
    result = part_ap(
        np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
        np.array([0.9, 0.9, 0.2, 0.9, 0.9]),
        np.array([0, 0, 1, 1, 2]),
        np.ones((5, 3)),
        np.ones(5, np.int64),
        3,
    )
    assert result.tp[4].tolist() == [1, 0, 0, 1, 1]
    assert result.ap[4] == pytest.approx(11 / 15)


def test_thresholds_are_strict() -> None:
    # mean IoU exactly 0.5: a TP at 0.4, an FP at 0.5; a part IoU exactly 0.5 does not count for PCP at 0.5.
    result = part_ap(np.array([0.9]), np.array([0.5]), np.array([0]), np.array([[1.0, 0.5, 1.0]]), np.array([2]), 1)
    assert result.tp[:, 0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert result.pcp[3] == pytest.approx(1.0)
    assert result.pcp[4] == 0.0  # unmatched at 0.5: padded with 0
    ious = np.array([[np.nan, 0.5, np.nan]])  # a NaN part IoU never counts: 1 of 2 parts at 0.4
    assert part_ap(np.array([0.9]), np.array([0.5]), np.array([0]), ious, np.array([2]), 1).pcp[3] == 0.5


def test_windowed_person_ious_equal_the_full_image_histogram() -> None:
    rng = np.random.default_rng(0)
    n, (height, width) = 5, (30, 40)
    for _ in range(200):
        gt = np.zeros((height, width), np.uint8)
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        y1, x1 = rng.integers(y0, height + 1), rng.integers(x0, width + 1)
        gt[y0:y1, x0:x1] = rng.choice([0, 1, 2, 4, 255], size=(y1 - y0, x1 - x0))  # 255: ignored
        window = slice(y0, y1), slice(x0, x1)
        truth = PersonTruth.from_window(*window, gt[window], gt[window] > 0, height * width, n)
        grid = rng.integers(0, n, size=rng.integers(1, 25, size=2)).astype(np.uint8)
        d = ParsingDetection(1, 1, (*rng.integers(-8, 35, size=2), grid.shape[1], grid.shape[0]), 0.5, grid)
        hist = fast_hist(gt, d.paste((height, width)), n)
        k = gt < n  # the official fast_hist, verbatim
        official = np.bincount(n * gt[k].astype(int) + d.paste((height, width))[k], minlength=n**2).reshape(n, n)
        assert (hist == official).all()
        got = person_ious(d.window((height, width)), [truth], height * width, n)[0]
        np.testing.assert_allclose(got, class_iou(hist), equal_nan=True)


def test_perfect_results_score_one(tmp_path: Path) -> None:
    left = person((6, 8), {(1, 1): 1, (2, 1): 2, (3, 1): 2, (4, 1): 5})
    right = person((6, 8), {(1, 5): 13, (2, 5): 5, (2, 6): 5, (3, 6): 9})
    split = open_parsing_split(write_cihp(tmp_path, [[left, right], [right]]))
    results = parsing_results_from_split(split)
    assert [d.image_id for d in results] == [1, 1, 2]
    assert len({d.score for d in results}) == 3
    figures = ParsingEvaluation(split, results).run()
    for key in ("mIoU", "pixel_acc", "mean_acc", "APp50", "APp_vol", "PCP50", "APh50", "APh75", "APh_vol"):
        assert figures[key] == pytest.approx(1.0), key
    # APr as QANet: 1 for the 5 classes with parts, 0 for the 14 classes neither the GT nor the results have
    per_class = {row["class"]: row["AP"][4] for row in figures["APr_per_class"]}
    assert [per_class[c] for c in ("Hat", "Hair", "UpperClothes", "Pants", "Face")] == [1.0] * 5
    assert figures["APr50"] == pytest.approx(5 / 19)
    # MHP, overlapping people: later people are on top in the GT, the last person of an image scores highest
    first = person((4, 4), {(r, c): 3 for r in range(3) for c in range(3)})
    second = person((4, 4), {(r, c): 4 for r in (1, 2, 3) for c in (2, 3)})
    mhp = open_parsing_split(write_mhp(tmp_path / "mhp", [[first, second]]))
    figures = ParsingEvaluation(mhp, parsing_results_from_split(mhp)).run()
    assert (figures["mIoU"], figures["APp50"], figures["PCP50"]) == pytest.approx((1.0, 1.0, 1.0))
    assert "APr" not in figures  # no part instance files


def test_region_ap_known_answer(tmp_path: Path) -> None:
    # GT parts: P1 class 1 (2 px), P1 class 2, P2 class 1, P2 class 2. Detection b on P2 labels (1, 4) as 1:
    # b's class-1 part has 3 px, IoU 2/3 with P2's; its class-2 part 1 px, IoU 1/2. a is P1 exactly (IoU 1).
    top = person((4, 6), {(0, 0): 1, (0, 1): 1, (1, 0): 2, (1, 1): 2})
    bottom = person((4, 6), {(0, 3): 1, (0, 4): 1, (1, 3): 2, (1, 4): 2})
    folder = write_cihp(tmp_path, [[top, bottom]])
    figures = evaluate(folder, [det(0, 0, [[1, 1], [2, 2]], 0.9), det(3, 0, [[1, 1], [2, 1]], 0.6)])
    rows = {row["class"]: row["AP"] for row in figures["APr_per_class"]}
    # class 1: IoUs (by score) 1, 2/3 -> AP 1 while t < 2/3, then TP FP: rec .5 .5, AP .5
    assert rows["Hat"] == pytest.approx([1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5])
    # class 2: IoUs 1, 1/2 -> AP 1 while t < 1/2, then .5 (1/2 > 0.5 is false)
    assert rows["Hair"] == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert rows["Gloves"] == [0.0] * 9  # in neither: AP 0, and it counts in the mean
    assert figures["APr"] == pytest.approx(np.array([2, 2, 2, 2, 1.5, 1.5, 1, 1, 1]) / 19)
    assert figures["APh"] == pytest.approx([1.0] * 10)
    table = folder / "Instance_ids" / "img1.txt"
    table.write_text(table.read_text() + "1 2 1\n")  # part 1 given a second class
    with pytest.raises(InputError, match=r"img1\.txt: part instance 1 is listed twice"):
        evaluate(folder, [])


def test_human_ap_known_answer(tmp_path: Path) -> None:
    gt = person((4, 4), {(r, c): 1 for r in (0, 1) for c in (0, 1)})
    # 3 of the 4 GT pixels and 1 more: IoU 3/5 = 0.6 -> TP at 0.5 and 0.55, not at 0.6 (strict)
    figures = evaluate(write_cihp(tmp_path, [[gt]]), [det(0, 0, [[1, 1, 1], [1, 0, 0]], 0.9)])
    assert figures["APh"] == pytest.approx([1, 1] + [0] * 8)
    assert (figures["APh50"], figures["APh75"], figures["APh_vol"]) == pytest.approx((1.0, 0.0, 0.2))


def test_region_ap_has_no_one_to_one_matching() -> None:
    # two predictions of one GT are both TPs: recall reaches 2 and QANet's AP is 2 (1 + 1 + (1 - 2) * 0)
    assert region_ap(np.array([0.9, 0.8]), np.array([0.9, 0.9]), 1, [0.5]).tolist() == [2.0]
    assert np.isnan(region_ap(np.array([0.9]), np.array([-np.inf]), 0, [0.5])[0])  # predictions, no GT: NaN
    assert region_ap(np.zeros(0), np.zeros(0), 0, [0.5])[0] == 0.0  # neither: 0


def test_cli_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    left = person((6, 8), {(1, 1): 1, (2, 1): 2, (3, 1): 2})
    folder = write_cihp(tmp_path / "gt", [[left], [left]])
    pred, out = tmp_path / "run" / "results.json", tmp_path / "figures.json"
    save_parsing_results(pred, parsing_results_from_split(open_parsing_split(folder)))
    command = ["evaluate", "--task", "parsing", "--gt", str(tmp_path / "gt"), "--pred", str(pred), "--quiet"]
    assert main([*command, "--out", str(out)]) == 0
    assert "APp50  100.00" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert (figures["mIoU"], figures["APp50"], figures["PCP50"], figures["images"]) == (1.0, 1.0, 1.0, 2)
    # images.json beside the results: its ids are mapped to the split by file stem
    records = json.loads(pred.read_text())
    for r in records:
        r["image_id"] += 100
    pred.write_text(json.dumps(records))
    (pred.parent / "images.json").write_text(
        json.dumps([{"id": 101, "file_name": "img1.jpg"}, {"id": 102, "file_name": "img2.jpg"}])
    )
    assert main([*command, "--dataset", "cihp", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["APp50"] == 1.0
    (pred.parent / "images.json").write_text(
        json.dumps([{"id": 101, "file_name": "img1.jpg"}, {"id": 102, "file_name": "x.jpg"}])
    )
    assert main(command) == 2
    assert "images.json: images[1] (id 102): file_name: 'x.jpg' is not an image of the split" in capsys.readouterr().err
    (pred.parent / "images.json").unlink()
    for r in records:
        r["image_id"] -= 100
    records[0]["parsing"] = "not base64!"
    pred.write_text(json.dumps(records))
    assert main(command) == 2
    assert f"{pred}: detection 0 (image 1): parsing: bad base64" in capsys.readouterr().err


# --- the results format -------------------------------------------------------------------------------------------


def test_results_round_trip_and_paste(tmp_path: Path) -> None:
    grid = np.array([[1, 2, 3], [4, 0, 19]], np.uint8)
    d = ParsingDetection(7, 1, (-1.5, 2.7, 3.9, 2.2), 0.25, grid)  # grid: max(int(h), 1) x max(int(w), 1) = 2 x 3
    path = tmp_path / "res.json"
    save_parsing_results(path, [d, det(0, 0, SQUARE, 0.5)])
    back = load_parsing_results(path, image_ids={1, 7}, category_ids={1}, num_classes=20)
    assert [(b.image_id, b.bbox, b.score) for b in back] == [(7, d.bbox, 0.25), (1, (0.0, 0.0, 2.0, 2.0), 0.5)]
    assert (back[0].parsing == grid).all()
    assert back[0].parsing.dtype == np.uint8
    # placed at (int(x), int(y)) = (-1, 2), clipped to a 4 x 3 image
    expected = np.zeros((4, 3), np.uint8)
    expected[2:4, 0:2] = grid[:, 1:3]
    assert (back[0].paste((4, 3)) == expected).all()
    assert back[0].window((2, 3)) is None  # wholly below the image
    with pytest.raises(ValueError, match="needs the grid"):
        ParsingDetection(1, 1, (0, 0, 3, 3), 0.5, grid)


def _png(image: np.ndarray) -> str:
    import base64

    import cv2

    return base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()


def _palette_png() -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ones((2, 2), np.uint8)).convert("P").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


GOOD_PNG = det(0, 0, SQUARE, 0.5).to_record()["parsing"]
MALFORMED = [
    ("not an object", lambda r: [r], "detection 0: expected an object"),
    ("missing image", lambda r: {k: v for k, v in r.items() if k != "image_id"}, "detection 0: image_id: missing"),
    ("string image", lambda r: {**r, "image_id": "1"}, "detection 0: image_id: expected an integer"),
    ("unknown image", lambda r: {**r, "image_id": 9}, "detection 0 (image 9): image_id: 9 is not an image"),
    ("category", lambda r: {**r, "category_id": 2}, "(image 1): category_id: 2 is not a category"),
    ("short bbox", lambda r: {**r, "bbox": [0, 0, 2]}, "(image 1): bbox: expected 4 finite numbers"),
    ("NaN bbox", lambda r: {**r, "bbox": [float("nan"), 0, 2, 2]}, "(image 1): bbox: expected 4 finite numbers"),
    ("negative bbox", lambda r: {**r, "bbox": [0, 0, -2, 2]}, "(image 1): bbox: negative width or height"),
    ("NaN score", lambda r: {**r, "score": float("nan")}, "(image 1): score: expected a finite number"),
    ("missing score", lambda r: {k: v for k, v in r.items() if k != "score"}, "(image 1): score: missing"),
    ("missing parsing", lambda r: {k: v for k, v in r.items() if k != "parsing"}, "(image 1): parsing: missing"),
    ("number parsing", lambda r: {**r, "parsing": 5}, "(image 1): parsing: expected a base64 PNG string"),
    ("bad base64", lambda r: {**r, "parsing": "@@@"}, "(image 1): parsing: bad base64"),
    ("not a PNG", lambda r: {**r, "parsing": "aGVsbG8gd29ybGQ="}, "(image 1): parsing: not a PNG"),
    ("RGB PNG", lambda r: {**r, "parsing": _png(np.ones((2, 2, 3), np.uint8))}, "parsing: not a single-channel"),
    ("16-bit PNG", lambda r: {**r, "parsing": _png(np.ones((2, 2), np.uint16))}, "(grayscale, 16-bit)"),
    ("palette PNG", lambda r: {**r, "parsing": _palette_png()}, "(palette, 8-bit)"),
    ("grid size", lambda r: {**r, "parsing": _png(np.ones((3, 2), np.uint8))}, "parsing: the grid is 3 x 2"),
    ("truncated", lambda r: {**r, "parsing": GOOD_PNG[:-12]}, "(image 1): parsing: truncated PNG"),
    ("label", lambda r: {**r, "parsing": _png(np.full((2, 2), 25, np.uint8))}, "label 25 is not one of the 20"),
]


@pytest.mark.parametrize(("mutate", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_records_are_rejected_by_file_detection_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    good = det(0, 0, SQUARE, 0.5).to_record()
    path = tmp_path / "res.json"
    path.write_text(json.dumps([mutate(good)]))
    with pytest.raises(InputError) as raised:
        load_parsing_results(path, image_ids={1}, category_ids={1}, num_classes=20)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_results_file_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "res.json"
    path.write_text('{"image_id": 1}')
    with pytest.raises(InputError, match="a results file is a JSON list"):
        load_parsing_results(path)
