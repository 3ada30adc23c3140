"""COCO-WholeBody keypoint evaluation (``densehuman evaluate --task wholebody``): xtcocotools' metric in NumPy."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from densehuman.cli import main
from densehuman.evaluation.wholebody import STAT_KEYS, evaluate_wholebody
from densehuman.validation import InputError

# The sigmas as the benchmark gives them (xtcocoapi demos/demo_coco_wholebody.py), typed out here on purpose so the
# known answers below do not depend on the module's own table.
SIGMAS_BODY = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
               0.087, 0.089, 0.089]  # fmt: skip
SIGMAS_FOOT = [0.068, 0.066, 0.066, 0.092, 0.094, 0.094]
SIGMAS_LEFTHAND = [0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017,
                   0.021, 0.021, 0.032, 0.02, 0.019, 0.022, 0.031]  # fmt: skip

FIELDS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21))
PARTS = ("body", "foot", "face", "lefthand", "righthand", "hand", "wholebody")
THRESHOLDS = np.linspace(0.5, 0.95, 10)
TOL = 1e-9


def person(
    ann_id: int,
    image_id: int,
    center: tuple[float, float],
    *,
    labelled: dict[str, int] | None = None,
    area: float = 10000.0,
    iscrowd: int = 0,
    spread: float = 30.0,
) -> dict[str, Any]:
    """A GT person: keypoints on a fixed pattern around ``center``; ``labelled[field]`` keypoints of a part (from
    the first) have v = 2, the rest are zeros (a field not named is fully labelled)."""
    labelled = labelled or {}
    ann: dict[str, Any] = {"id": ann_id, "image_id": image_id, "category_id": 1, "area": area, "iscrowd": iscrowd}
    offset = 0
    for field, count in FIELDS:
        n = labelled.get(field, count)
        values: list[float] = []
        for k in range(count):
            if k < n:
                angle = 2.399963 * (offset + k)  # golden-angle spiral: distinct points
                radius = spread * math.sqrt((offset + k + 1) / 133)
                values += [center[0] + radius * math.cos(angle), center[1] + radius * math.sin(angle), 2]
            else:
                values += [0, 0, 0]
        ann[field] = values
        offset += count
    points = np.array([v for field, _ in FIELDS for v in ann[field]]).reshape(-1, 3)
    shown = points[points[:, 2] > 0, :2]
    lo, hi = (shown.min(0), shown.max(0)) if len(shown) else (np.array(center) - 10, np.array(center) + 10)
    ann["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
    return ann


def dataset(annotations: list[dict[str, Any]], images: int = 1) -> dict[str, Any]:
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": 480, "width": 640} for i in range(1, images + 1)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }


def copied(ann: dict[str, Any], score: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    """A detection that is the GT person (keypoint scores = its visibilities), shifted by ``shift`` pixels."""
    result: dict[str, Any] = {"image_id": ann["image_id"], "category_id": 1, "score": score}
    for field, _count in FIELDS:
        values = np.array(ann[field], dtype=np.float64).reshape(-1, 3)
        values[:, 0] += shift[0]
        values[:, 1] += shift[1]
        result[field] = values.reshape(-1).tolist()
    return result


def stats(figures: dict[str, Any], part: str) -> np.ndarray:
    return np.array([figures["parts"][part][k] for k in STAT_KEYS])


def steps(oks: float) -> float:
    """AP (and AR) of one GT and one detection at OKS ``oks``: the fraction of the ten thresholds it passes."""
    return float(np.count_nonzero(oks >= THRESHOLDS)) / 10


# ------------------------------------------------------------------------------------------ known answers
@pytest.mark.parametrize("target", [0.45, 0.52, 0.63, 0.72, 0.78, 0.87, 0.93, 0.97])
def test_one_labelled_keypoint_steps_with_oks(target: float) -> None:
    # Only the nose is labelled (sigma 0.026): OKS = exp(-d² / (2 area (2 sigma)²)), so d = sqrt(-ln(OKS) 2 area 4σ²).
    area = 10000.0
    gt = person(1, 1, (300.0, 200.0), labelled={"keypoints": 1}, area=area)
    d = math.sqrt(-math.log(target) * 2 * area * (2 * 0.026) ** 2)
    figures = evaluate_wholebody(dataset([gt]), [copied(gt, shift=(d * 0.6, d * 0.8))])
    body = figures["parts"]["body"]
    assert body["AP"] == pytest.approx(steps(target), abs=TOL)
    assert body["AR"] == pytest.approx(steps(target), abs=TOL)
    # precision is tp / (tp + fp + eps), as COCOeval: 1 - 1e-16 rather than 1
    assert body["AP50"] == pytest.approx(1.0 if target >= 0.5 else 0.0, abs=TOL)
    assert body["AP75"] == pytest.approx(1.0 if target >= 0.75 else 0.0, abs=TOL)
    assert body["APl"] == pytest.approx(body["AP"], abs=TOL)  # area 10000 > 96²: large
    assert body["APm"] == -1.0
    assert body["ARm"] == -1.0


def test_uniform_shift_oks_by_hand() -> None:
    # Every keypoint moved by (3, 4): 5 px. Body OKS = mean_k exp(-25 / (2 * area * (2 sigma_k)²)), and the same for
    # the foot and each hand over their own sigmas.
    area = 3600.0  # 60²: a medium person
    gt = person(1, 1, (300.0, 200.0), area=area)
    figures = evaluate_wholebody(dataset([gt]), [copied(gt, shift=(3.0, 4.0))])
    for part, sigmas in (("body", SIGMAS_BODY), ("foot", SIGMAS_FOOT), ("lefthand", SIGMAS_LEFTHAND)):
        oks = float(np.mean([math.exp(-25.0 / (2 * area * (2 * s) ** 2)) for s in sigmas]))
        assert stats(figures, part)[0] == pytest.approx(steps(oks), abs=TOL), (part, oks)
        assert figures["parts"][part]["APm"] == pytest.approx(steps(oks), abs=TOL)
        assert figures["parts"][part]["APl"] == -1.0
    assert figures["parts"]["body"]["AP"] == pytest.approx(0.5, abs=TOL)  # OKS 0.719: 0.50 .. 0.70 pass
    assert figures["parts"]["foot"]["AP"] == pytest.approx(0.8, abs=TOL)  # OKS 0.864: 0.50 .. 0.85 pass
    assert figures["parts"]["face"]["AP"] == 0.0  # face sigmas are tiny: 5 px is far for a 60 px person
    assert figures["parts"]["hand"]["AP"] == pytest.approx(figures["parts"]["lefthand"]["AP"], abs=TOL)


def test_perfect_predictions_score_one_for_every_part() -> None:
    anns = [
        person(1, 1, (100.0, 100.0)),
        person(2, 1, (400.0, 300.0), area=3000.0),
        person(3, 2, (200.0, 200.0), area=50000.0, spread=80.0),
        person(4, 3, (300.0, 250.0), labelled={"lefthand_kpts": 0, "face_kpts": 30}),
        person(5, 3, (550.0, 100.0), labelled={f: 0 for f, _ in FIELDS}, iscrowd=1),  # a crowd: ignored
    ]
    results = [copied(a) for a in anns if not a["iscrowd"]]
    figures = evaluate_wholebody(dataset(anns, images=3), results)
    assert list(figures["parts"]) == list(PARTS)
    assert figures["gt_people"] == 4
    assert figures["detections"] == 4
    assert figures["images"] == 3
    for part in PARTS:
        row = figures["parts"][part]
        for key in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
            assert row[key] == pytest.approx(1.0, abs=TOL), (part, key)


def test_dropping_a_detection_lowers_ap_to_the_recall_it_reaches() -> None:
    anns = [person(k, k, (300.0, 200.0)) for k in range(1, 5)]
    results = [copied(a) for a in anns]
    full = evaluate_wholebody(dataset(anns, images=4), results)
    dropped = evaluate_wholebody(dataset(anns, images=4), results[1:])
    for part in PARTS:
        assert full["parts"][part]["AP"] == pytest.approx(1.0, abs=TOL)
        # precision 1 up to recall 3/4: 76 of the 101 recall points (0.00 .. 0.75)
        assert dropped["parts"][part]["AP"] == pytest.approx(76 / 101, abs=TOL), part
        assert dropped["parts"][part]["AR"] == pytest.approx(0.75, abs=TOL), part


def test_a_false_positive_ranked_first_halves_ap() -> None:
    anns = [person(1, 1, (150.0, 150.0))]
    far = copied(anns[0], score=0.9, shift=(300.0, 200.0))
    figures = evaluate_wholebody(dataset(anns), [copied(anns[0], score=0.8), far])
    # ranked FP, TP: precision 1/2 at recall 1 (interpolated over every recall point)
    assert figures["parts"]["body"]["AP"] == pytest.approx(0.5, abs=TOL)
    assert figures["parts"]["body"]["AR"] == pytest.approx(1.0, abs=TOL)


# ------------------------------------------------------------------------------ parts without labelled points
def test_all_zero_gt_part_is_ignored_and_scores_minus_one_alone() -> None:
    gt = person(1, 1, (300.0, 200.0), labelled={"lefthand_kpts": 0})
    figures = evaluate_wholebody(dataset([gt]), [copied(gt)])
    assert np.all(stats(figures, "lefthand") == -1.0)  # no GT hand counts: COCOeval's -1
    assert figures["parts"]["righthand"]["AP"] == pytest.approx(1.0, abs=TOL)
    assert figures["parts"]["hand"]["AP"] == pytest.approx(1.0, abs=TOL)  # the mean of the sides that have figures
    assert figures["parts"]["wholebody"]["AP"] == pytest.approx(1.0, abs=TOL)  # over the labelled points only


@pytest.mark.parametrize(("hand_shift", "expected"), [((5.0, 5.0), 1.0), ((500.0, 400.0), 0.5)])
def test_detection_on_a_person_without_a_labelled_hand(hand_shift: tuple[float, float], expected: float) -> None:
    # Image 1: a person with a labelled left hand, detected exactly (score 0.8). Image 2: a person whose left hand is
    # not labelled, detected with score 0.9. That GT is ignored for the left hand, and the detection's left hand is
    # compared with the GT box doubled: inside it (OKS 1) the detection matches the ignored GT and is ignored; far
    # outside it is a false positive ranked first.
    labelled = person(1, 1, (300.0, 200.0))
    unlabelled = person(2, 2, (300.0, 200.0), labelled={"lefthand_kpts": 0})
    detection = copied(unlabelled, score=0.9)
    hand = np.array(person(9, 2, (300.0, 200.0))["lefthand_kpts"]).reshape(-1, 3)
    hand[:, :2] += hand_shift
    hand[:, 2] = 1.0
    detection["lefthand_kpts"] = hand.reshape(-1).tolist()
    figures = evaluate_wholebody(dataset([labelled, unlabelled], images=2), [copied(labelled, score=0.8), detection])
    assert figures["parts"]["lefthand"]["AP"] == pytest.approx(expected, abs=TOL)
    assert figures["parts"]["righthand"]["AP"] == pytest.approx(1.0, abs=TOL)


def test_detection_without_positive_part_scores_is_dropped_for_that_part() -> None:
    gt = person(1, 1, (300.0, 200.0))
    detection = copied(gt)
    detection["foot_kpts"] = [v if k % 3 != 2 else 0.0 for k, v in enumerate(detection["foot_kpts"])]
    figures = evaluate_wholebody(dataset([gt]), [detection])
    assert figures["parts"]["foot"]["AP"] == 0.0
    assert figures["parts"]["foot"]["AR"] == 0.0
    assert figures["parts"]["body"]["AP"] == pytest.approx(1.0, abs=TOL)


def test_part_scores_rank_their_part() -> None:
    # Two detections of one person: a worse one (shifted) and the exact one. `score` ranks the shifted one first
    # (its match takes the GT; the exact one becomes a false positive); `foot_score` ranks the exact one first.
    gt = person(1, 1, (300.0, 200.0), area=1600.0)
    bad = copied(gt, score=0.9, shift=(6.0, 0.0))
    good = copied(gt, score=0.5)
    plain = evaluate_wholebody(dataset([gt]), [bad, good])
    bad["foot_score"], good["foot_score"] = 0.1, 0.9
    ranked = evaluate_wholebody(dataset([gt]), [bad, good])
    assert plain["parts"]["foot"]["AP"] < 1.0
    assert ranked["parts"]["foot"]["AP"] == pytest.approx(1.0, abs=TOL)
    assert ranked["ranked_by"]["foot"] == "foot_score"
    assert ranked["ranked_by"]["face"] == "score"
    assert ranked["parts"]["body"]["AP"] == pytest.approx(plain["parts"]["body"]["AP"], abs=TOL)


# ------------------------------------------------------------------------------ agreement with xtcocotools
def random_case(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A random ground truth and results (RandomState: a stream NumPy keeps fixed) with crowds, unlabelled parts,
    boxes in the results (so detection areas come from them), part scores on some detections, false positives."""
    rng = np.random.RandomState(seed)
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    images = 8
    for image in range(1, images + 1):
        for _ in range(rng.randint(0, 4)):
            center = (rng.uniform(60, 580), rng.uniform(60, 420))
            labelled = {f: (0 if rng.rand() < 0.25 else rng.randint(1, n + 1)) for f, n in FIELDS}
            gt = person(len(anns) + 1, image, center, labelled=labelled, area=float(rng.uniform(300, 20000)),
                        iscrowd=int(rng.rand() < 0.1), spread=float(rng.uniform(15, 120)))  # fmt: skip
            anns.append(gt)
            for _ in range(rng.randint(0, 3)):
                det = copied(gt, score=float(rng.rand()), shift=tuple(rng.normal(0, 4, 2)))
                for field, count in FIELDS:
                    values = np.array(det[field]).reshape(count, 3)
                    values[:, :2] += rng.normal(0, 3, (count, 2))
                    values[:, 2] = rng.rand(count) * (rng.rand(count) > 0.2)
                    det[field] = values.reshape(-1).tolist()
                if rng.rand() < 0.5:
                    det["foot_score"], det["wholebody_score"] = float(rng.rand()), float(rng.rand())
                results.append(det)
        for _ in range(rng.randint(0, 2)):  # a false positive
            fp = copied(person(0, image, (rng.uniform(0, 640), rng.uniform(0, 480))), score=float(rng.rand()))
            results.append(fp)
    for det in results:
        points = np.concatenate([np.array(det[f]).reshape(-1, 3) for f, _ in FIELDS])
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        det["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
    order = rng.permutation(len(results))
    return dataset(anns, images=images), [results[k] for k in order]


# COCOeval(...).stats of xtcocotools 1.14.3 (its cocoeval.py and coco.py run on these inputs) for random_case(seed)
# fmt: off
XTCOCOTOOLS_STATS: dict[int, dict[str, list[float]]] = {
    1: {
        "body": [
            0.041773927392739274, 0.16237623762376235, 0.02599009900990099, 0.08481848184818483,
            0.0, 0.16, 0.4,
            0.2, 0.2, 0.0,
        ],
        "foot": [
            0.056633663366336635, 0.06435643564356436, 0.06435643564356436, 0.22722772277227724,
            0.0, 0.225, 0.25,
            0.25, 0.45, 0.0,
        ],
        "face": [
            0.034323432343234324, 0.0858085808580858, 0.0, 0.05148514851485148,
            -1.0, 0.1, 0.25,
            0.0, 0.1, -1.0,
        ],
        "lefthand": [
            0.01287128712871287, 0.0429042904290429, 0.0, 0.033663366336633666,
            0.0, 0.075, 0.25,
            0.0, 0.1, 0.0,
        ],
        "righthand": [
            0.014480198019801981, 0.1188118811881188, 0.0, 0.033828382838283835,
            0.0, 0.06000000000000001, 0.4,
            0.0, 0.075, 0.0,
        ],
        "wholebody": [
            0.026650165016501647, 0.1122112211221122, 0.0, 0.06336633663366337,
            0.0, 0.08333333333333333, 0.3333333333333333,
            0.0, 0.125, 0.0,
        ],
    },
    3: {
        "body": [
            0.2145326150262085, 0.36709376820034945, 0.18811881188118812, 0.04949080622347948,
            0.4962535814020963, 0.32727272727272727, 0.6363636363636364,
            0.18181818181818182, 0.14285714285714285, 0.65,
        ],
        "foot": [
            0.6329418223011699, 0.7904879773691654, 0.7362093352192363, 0.5826552655265527,
            0.7727122712271227, 0.7999999999999999, 0.9090909090909091,
            0.9090909090909091, 0.6857142857142857, 1.0,
        ],
        "face": [
            0.08926896449043398, 0.16198913124395145, 0.09900990099009897, 0.0,
            0.24851485148514846, 0.15454545454545454, 0.36363636363636365,
            0.09090909090909091, 0.0, 0.425,
        ],
        "lefthand": [
            0.2260856348792774, 0.4107173875282265, 0.28217821782178215, 0.04889203206034889,
            0.5001214956660501, 0.32, 0.6,
            0.3, 0.1, 0.65,
        ],
        "righthand": [
            0.1029557367501456, 0.24868957483983692, 0.03712871287128713, 0.04891089108910891,
            0.25810831083108304, 0.3, 0.5714285714285714,
            0.14285714285714285, 0.16, 0.65,
        ],
        "wholebody": [
            0.13382131070249884, 0.2832390381895333, 0.1056105610561056, 0.0095002357378595,
            0.34092590577739096, 0.24615384615384617, 0.5384615384615384,
            0.15384615384615385, 0.0375, 0.58,
        ],
    },
}
# fmt: on


@pytest.mark.parametrize("seed", sorted(XTCOCOTOOLS_STATS))
def test_matches_xtcocotools(seed: int) -> None:
    gt, results = random_case(seed)
    figures = evaluate_wholebody(gt, results)
    for part, expected in XTCOCOTOOLS_STATS[seed].items():
        np.testing.assert_allclose(stats(figures, part), expected, atol=1e-12, err_msg=part)


# ------------------------------------------------------------------------------------------ bad inputs
def test_unknown_image_id_is_refused() -> None:
    gt = person(1, 1, (300.0, 200.0))
    stray = copied(gt)
    stray["image_id"] = 99
    with pytest.raises(InputError, match=r"detection 1 \(image 99\): image_id: 99 is not an image of the ground"):
        evaluate_wholebody(dataset([gt]), [copied(gt), stray])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"foot_kpts": [1.0] * 15}, r"detection 0 \(image 1\): foot_kpts: expected 18 numbers, got 15"),
        ({"face_kpts": None}, r"detection 0 \(image 1\): face_kpts: expected a list of numbers, got null"),
        ({"lefthand_kpts": [math.nan] * 63}, r"detection 0 \(image 1\): lefthand_kpts: non-finite value at element 0"),
        ({"score": math.inf}, r"detection 0 \(image 1\): score: expected a finite number"),
        ({"category_id": 2}, r"detection 0 \(image 1\): category_id: 2 is not a category of the ground truth"),
        ({"righthand_kpts": "x"}, r"detection 0 \(image 1\): righthand_kpts: expected a list of numbers"),
        ({"wholebody_score": "high"}, r"detection 0 \(image 1\): wholebody_score: expected a finite number"),
    ],
)
def test_bad_result_fields_are_named(change: dict[str, Any], message: str) -> None:
    gt = person(1, 1, (300.0, 200.0))
    bad = {**copied(gt), **change}
    with pytest.raises(InputError, match=r"^<results>: " + message):
        evaluate_wholebody(dataset([gt]), [bad])


def test_missing_field_and_box_rules() -> None:
    gt = person(1, 1, (300.0, 200.0))
    missing = copied(gt)
    del missing["righthand_kpts"]
    with pytest.raises(InputError, match=r"detection 0 \(image 1\): righthand_kpts: missing"):
        evaluate_wholebody(dataset([gt]), [missing])
    boxed = {**copied(gt), "bbox": [0, 0, 10, 10]}
    with pytest.raises(InputError, match=r"detection 1 \(image 1\): bbox: missing \(detection 0 has a box"):
        evaluate_wholebody(dataset([gt]), [boxed, copied(gt)])
    with pytest.raises(InputError, match="a results file is a JSON list of detections"):
        evaluate_wholebody(dataset([gt]), {"image_id": 1})  # type: ignore[arg-type]


def test_ground_truth_needs_area_and_part_lists() -> None:
    gt = person(1, 1, (300.0, 200.0))
    no_area = copy.deepcopy(gt)
    del no_area["area"]
    with pytest.raises(InputError, match=r"^<ground truth>: annotations\[0\] \(id 1\): area: missing"):
        evaluate_wholebody(dataset([no_area]), [])
    no_face = copy.deepcopy(gt)
    del no_face["face_kpts"]
    with pytest.raises(InputError, match=r"annotations\[0\] \(id 1\): face_kpts: missing"):
        evaluate_wholebody(dataset([no_face]), [])


def test_no_detections_score_zero() -> None:
    figures = evaluate_wholebody(dataset([person(1, 1, (300.0, 200.0))]), [])
    assert figures["parts"]["body"]["AP"] == 0.0
    assert figures["parts"]["wholebody"]["AR"] == 0.0


# ------------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def synth_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path_factory.mktemp("wholebody_synth")
    job = SynthJob(
        root,
        images=3,
        seed=1,
        val_fraction=0.0,
        config=SynthConfig(size=(128, 160), max_people=2),
        workers=1,
        preview_count=0,
    )
    run_synth(job, progress=False)
    return root / "annotations" / "coco_wholebody_train.json"


def test_cli_end_to_end(synth_gt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = json.loads(synth_gt.read_text())
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps([copied(a) for a in gt["annotations"]]))
    out = tmp_path / "figures.json"
    command = ["evaluate", "--task", "wholebody", "--gt", str(synth_gt), "--pred", str(pred)]
    assert main([*command, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "part" in printed
    assert "AP50" in printed
    body_row = next(line for line in printed.splitlines() if line.startswith("body "))
    assert body_row.split()[1:] == ["100.00"] * 4
    figures = json.loads(out.read_text())
    assert figures["task"] == "wholebody"
    assert figures["images"] == 3
    assert figures["parts"]["body"]["AP"] == pytest.approx(1.0, abs=TOL)
    assert figures["parts"]["wholebody"]["AP"] == pytest.approx(1.0, abs=TOL)
    for part in PARTS:  # every part with a labelled GT person scores 1; one without has nothing to score
        assert figures["parts"][part]["AP"] in (pytest.approx(1.0, abs=TOL), -1.0)

    # dropping a detection lowers the figures, and the figures file is replaced (as for --task parsing)
    pred.write_text(json.dumps([copied(a) for a in gt["annotations"]][1:]))
    assert main([*command, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["parts"]["body"]["AP"] < 1.0

    # a bad results file: one line naming file, detection and field; no figures written
    bad = [copied(a) for a in gt["annotations"]]
    bad[1]["image_id"] = 424242
    pred.write_text(json.dumps(bad))
    fresh = tmp_path / "fresh.json"
    assert main([*command, "--out", str(fresh)]) == 2
    err = capsys.readouterr().err
    assert f"{pred}: detection 1 (image 424242): image_id: 424242 is not an image of the ground truth" in err
    assert "Traceback" not in err
    assert not fresh.exists()
