"""DensePose evaluation speed: GPSm (and the other modes) on a validation set of about 2,000 annotated people.

    python benchmarks/evaluation.py [--people 2000] [--images 240] [--modes gpsm] [--keep DIR]

A synthetic dataset is generated (or reused with --keep), its val split widened by repeating its images under new
ids until it holds --people annotated people (the evaluation does the same work per person either way), and
perturbed predictions (U, V noise and box jitter, so GPS is neither 0 nor 1) are scored. Peak memory is the
process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import copy
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from densehuman.evaluation.densepose import DensePoseEvalConfig, DensePoseEvaluation, load_ground_truth
from densehuman.evaluation.geodesic_data import load_eval_body
from densehuman.evaluation.predictions import predictions_from_dataset
from densehuman.synth.engine import SynthJob, run_synth


def widen(gt: dict, detections: list, people: int) -> tuple[dict, list]:
    annotated = sum(1 for a in gt["annotations"] if "dp_x" in a)
    copies = max(1, int(np.ceil(people / max(annotated, 1))))
    images, anns, dets = [], [], []
    max_image = max(im["id"] for im in gt["images"])
    next_ann = 1
    for c in range(copies):
        shift = c * max_image
        for im in gt["images"]:
            images.append({**im, "id": im["id"] + shift})
        for a in gt["annotations"]:
            anns.append({**copy.deepcopy(a), "id": next_ann, "image_id": a["image_id"] + shift})
            next_ann += 1
        dets += [replace(d, image_id=d.image_id + shift) for d in detections]
    return {**gt, "images": images, "annotations": anns}, dets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--images", type=int, default=240, help="images of the generated dataset")
    parser.add_argument("--modes", nargs="+", default=["gpsm"], choices=["gps", "gpsm", "iou"])
    parser.add_argument("--keep", help="generate the dataset here (or reuse it) instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp) / "ds"
        if not (root / "dataset.json").is_file():  # worker processes: the generator's memory is not counted here
            job = SynthJob(root, images=args.images, seed=11, val_fraction=0.5, preview_count=0, workers=2)
            run_synth(job, progress=True)
        gt = load_ground_truth(root / "annotations" / "densepose_val.json")
        dets = predictions_from_dataset(root, "val", rng=np.random.default_rng(0), uv_noise=0.03, box_jitter=0.02)
        gt, dets = widen(gt, dets, args.people)
        body = load_eval_body("anny")
        people = sum(1 for a in gt["annotations"] if "dp_x" in a)
        points = sum(len(a["dp_x"]) for a in gt["annotations"] if "dp_x" in a)
        config = DensePoseEvalConfig(modes=tuple(args.modes), box_ap=False, rcp=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        figures = DensePoseEvaluation(gt, dets, body, config).run()
        elapsed = time.perf_counter() - t0
        config_all = DensePoseEvalConfig()
        t1 = time.perf_counter()
        DensePoseEvaluation(gt, dets, body, config_all).run()
        elapsed_all = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| figure | value |\n|---|---|")
    print(f"| images | {len(gt['images'])} |")
    print(f"| GT people with DensePose points | {people} ({points / max(people, 1):.0f} points each) |")
    print(f"| detections | {len(dets)} |")
    print(f"| {'+'.join(args.modes)} evaluation time | {elapsed:.2f} s |")
    print(f"| all three modes + box AP + RCP | {elapsed_all:.2f} s |")
    print(
        f"| peak resident memory: before evaluating (data, detections, body) / after | {before:.0f} / {peak:.0f} MiB |"
    )
    for mode in args.modes:
        print(
            f"| {mode} AP / AP50 / AP75 | {figures[mode]['AP']:.4f} / {figures[mode]['AP50']:.4f} / "
            f"{figures[mode]['AP75']:.4f} |"
        )


if __name__ == "__main__":
    main()
