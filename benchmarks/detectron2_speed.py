"""Full-size DensePose R-CNN on the CPU against detectron2's speed: median seconds per image, end to end.

    python benchmarks/detectron2_speed.py [--runs 10] [--warmup 3] [--threads N] [--models r50_fpn r50_fpn_legacy]

Each model is the full-width preset (``densepose_rcnn_r50_fpn``: detectron2 ``densepose_rcnn_R_50_FPN_s1x``;
``densepose_rcnn_r50_fpn_legacy``: ``..._s1x_legacy``) with random weights, saved as a densehuman checkpoint and
loaded by ``Predictor(checkpoint, min_score=0.05)``; one call on the detectron2 fixture's 240x320 BGR image
includes the test-time resize to 800x1067, the network and the 10 people's chart results.

Speed depends on the work the weights cause, not on their values, so the random model is made to cause a trained
model's work: its FrozenBatchNorm statistics are set from the fixture image (activations of unit scale; with the
raw initialization they reach thousands and the RPN is left with a single proposal), and its box predictor keeps
the 10 best detections (``detections_per_image=10``; the class logits are halved and the person logit lowered by
2, which gives scores of 0.65 to 0.72 on the fixture image). The detectron2 figures are its own median times on
a 2-core machine of this class with the model-zoo models: 4.9 s (``s1x``) and 3.1 s (``s1x_legacy``).

Rows: ``optimized`` is the default ``Predictor``; ``whole-image decoder`` the same but decoding the full stride-4
map instead of the windows around the detections (the cost when people fill the image); ``unoptimized`` is
``Predictor(..., optimize=False)``, the model as loaded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from densehuman.config import to_dict
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.inference.predictor import Predictor
from densehuman.models.backbones import FrozenBatchNorm2d
from densehuman.models.branches.densepose.branch import DensePoseBranch
from densehuman.models.build import build_model
from densehuman.models.detector import Detector
from densehuman.models.zoo import preset

FIXTURE = Path("/work/shared/fixtures/detectron2/densepose_rcnn_R_50_FPN_s1x/reference.npz")
DETECTRON2_SECONDS = {"r50_fpn": 4.9, "r50_fpn_legacy": 3.1}
DETECTIONS = 10


def fixture_images() -> tuple[np.ndarray, np.ndarray]:
    """The fixture's (240, 320, 3) BGR image and its (800, 1067, 3) resize; a random image when it is absent."""
    if FIXTURE.is_file():
        ref = np.load(FIXTURE)
        return ref["image_bgr"], ref["image_resized_bgr"]
    print(f"({FIXTURE} not found: timing a random 240x320 image; the detection count may differ)")
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    import cv2

    return image, cv2.resize(image, (1067, 800), interpolation=cv2.INTER_LINEAR)


@torch.no_grad()
def calibrate(model: Detector, resized_bgr: np.ndarray) -> None:
    """Set every FrozenBatchNorm's statistics to the batch statistics of its input on this image, layer by layer
    (one forward pass: each norm sees the already calibrated layers before it)."""

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(module, FrozenBatchNorm2d)
        module.running_mean.copy_(args[0].mean(dim=(0, 2, 3)))
        module.running_var.copy_(args[0].var(dim=(0, 2, 3)))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    image = torch.from_numpy(np.ascontiguousarray(resized_bgr[..., ::-1])).permute(2, 0, 1)
    batch, _ = model.preprocess([image])
    model.backbone(batch)
    for handle in handles:
        handle.remove()


def make_checkpoint(name: str, folder: Path, resized_bgr: np.ndarray) -> Path:
    config = preset(f"densepose_rcnn_{name}")
    box_head = replace(config.model.box_head, detections_per_image=DETECTIONS)
    config = replace(config, model=replace(config.model, box_head=box_head))
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    calibrate(model, resized_bgr)
    with torch.no_grad():  # the best scores come down from 0.99 to about 0.7: still well above 0.05
        model.box_head.predictor.cls_score.weight *= 0.5
        model.box_head.predictor.cls_score.bias.copy_(torch.tensor([-2.0, 0.0]))
    return save_checkpoint(folder / name, 0, model, to_dict(config))


def time_predictor(predictor: Predictor, image: np.ndarray, runs: int, warmup: int) -> tuple[list[float], int]:
    for _ in range(warmup):
        result = predictor(image, bgr=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = predictor(image, bgr=True)
        times.append(time.perf_counter() - start)
    return times, len(result.people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model and variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (oneDNN and NNPACK set up)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    parser.add_argument("--models", nargs="+", default=list(DETECTRON2_SECONDS), choices=list(DETECTRON2_SECONDS))
    parser.add_argument("--no-unoptimized", action="store_true", help="skip the optimize=False rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image, resized = fixture_images()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.runs} runs after {args.warmup}")
    print()
    print("| model | variant | detections | median s/img | min s/img | detectron2 s/img | speed-up |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            checkpoint = make_checkpoint(name, Path(tmp), resized)
            variants = ["optimized", "whole-image decoder"] if name == "r50_fpn" else ["optimized"]
            if not args.no_unoptimized:
                variants.append("unoptimized")
            for variant in variants:
                predictor = Predictor(checkpoint, min_score=0.05, optimize=variant != "unoptimized")
                if variant == "whole-image decoder":
                    for branch in predictor.model.extra_heads:
                        if isinstance(branch, DensePoseBranch):
                            branch.decode_regions = False
                times, people = time_predictor(predictor, image, args.runs, args.warmup)
                median = statistics.median(times)
                reference = DETECTRON2_SECONDS[name]
                print(
                    f"| densepose_rcnn_{name} | {variant} | {people} | {median:.2f} | {min(times):.2f} | "
                    f"{reference:.1f} | {reference / median:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
