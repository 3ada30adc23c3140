"""How closely densehuman reproduces detectron2's outputs on this CPU: the four detectron2 fixtures through the
Predictor from the original image, as loaded (detectron2's sequence of operations) and optimized (the default).

    python benchmarks/detectron2_agreement.py [--fixtures DIR]
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=COMPATIBLE python benchmarks/detectron2_agreement.py

The variables make this CPU compute like another one (see .ci/run). Per fixture and path it prints the largest box
difference (original-image pixels), the largest score difference, the share of chart labels equal to detectron2's
(the worst box, and all pixels together) and the largest U/V difference where labels agree, relative to the largest
|U/V| (random weights: U and V reach thousands).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from densehuman.inference.predictor import Predictor
from densehuman.models.anchors import pairwise_iou

NAMES = [
    "densepose_rcnn_R_50_FPN_s1x",
    "densepose_rcnn_R_50_FPN_s1x_legacy",
    "densepose_rcnn_R_50_FPN_DL_s1x",
    "densepose_rcnn_R_50_FPN_WC1M_s1x",
]
FORCING = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS")


def measure(folder: Path, optimize: bool) -> tuple[float, float, float, float, float]:
    with np.load(folder / "reference.npz") as data:
        ref = {k: data[k] for k in data.files}
    result = Predictor(folder / "model.pkl", min_score=0.05, optimize=optimize)(ref["image_bgr"], bgr=True)
    boxes = np.array([p.box for p in result.people], np.float32)
    iou = pairwise_iou(torch.from_numpy(ref["boxes_xyxy"]).float(), torch.from_numpy(boxes)).numpy()
    match = iou.argmax(1)
    box_diff = float(np.abs(boxes[match] - ref["boxes_xyxy"]).max())
    score_diff = float(np.abs(np.array([p.score for p in result.people])[match] - ref["scores"]).max())
    worst, same, pixels, uv = 1.0, 0, 0, 0.0
    for i, j in enumerate(match):
        labels, ref_uv = ref[f"chart/{i}/labels"], ref[f"chart/{i}/uv"]
        chart = result.people[j].chart
        agree = chart.labels == labels
        worst, same, pixels = min(worst, float(agree.mean())), same + int(agree.sum()), pixels + agree.size
        uv = max(uv, float(np.abs(chart.uv[:, agree] - ref_uv[:, agree]).max()) / float(np.abs(ref_uv).max()))
    return box_diff, score_diff, worst, same / pixels, uv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", default="../shared/fixtures/detectron2", help="the fixtures folder")
    args = parser.parse_args()
    root = Path(args.fixtures)
    if not root.is_dir():
        root = Path("/work/shared/fixtures/detectron2")
    forced = " ".join(f"{k}={os.environ[k]}" for k in FORCING if k in os.environ) or "none"
    print(
        f"CPU dispatch {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; forced: {forced}"
    )
    print(
        f"{'fixture':34} {'path':10} {'boxes px':>9} {'scores':>9} {'labels worst box':>17} {'all':>8} {'U,V rel':>9}"
    )
    for name in NAMES:
        for optimize in (False, True):
            box, score, worst, overall, uv = measure(root / name, optimize)
            path = "optimized" if optimize else "as loaded"
            print(f"{name:34} {path:10} {box:9.1e} {score:9.1e} {100 * worst:16.2f}% {100 * overall:7.2f}% {uv:9.1e}")


if __name__ == "__main__":
    main()
