"""Mobile Parsing R-CNN's size and speed tables ("Making DensePose fast and light", Tables 1-6) on this CPU.

    python benchmarks/mobile_tables.py [--runs 5] [--warmup 2] [--threads N] [--tables 1,2,3,4,5,6] [--quick]

Every model is a preset with random weights made to do a trained model's work (batch-norm statistics set from the
image, as ``detectron2_speed.py`` does, and exactly ``--people`` detections kept: ``detections_per_image`` with
``min_score=0``), timed end to end through ``Predictor`` on the detectron2 fixture's image (a random one when the
fixture is absent): test-time resize, network, chart and parsing results. Median seconds of ``--runs`` calls.

Tables:
1. the presets against DensePose R-CNN (R-50-FPN): parameters, fp32 size on disk, latency at short edge 800 and 512;
2. the paper's backbone sweep: (A) on each of its 22 timm backbones (23 rows: spnasnet_100 twice), parameters
   against the paper's and latency at 800;
3. the neck and width ablation: (A), then one BiFPN layer at 256, 112, 88 and 64 channels;
4. FPS of (B) against the input's short edge;
5. FPS of (B) against the number of people (the runtime grows with people only through the RoI heads);
6. fp32 against int8 (post-training static quantization, x86 kernels) for (B): size on disk and latency.
Targets from the issue: (B) int8 under 4.5 MB, int8 at least 1.6x fp32, (B) fp32 at least 4x R-50-FPN.
Accuracy (the AP columns of Table 6) needs a trained model: ``densehuman export`` prints the agreement of the
export with its float model, and ``densehuman evaluate`` scores each on a dataset.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from detectron2_speed import time_predictor  # benchmarks/ is the script's folder

from densehuman.config import Config, to_dict
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.export.quantize import quantize_ptq, save_int8
from densehuman.inference.predictor import Predictor
from densehuman.models.build import build_model
from densehuman.models.detector import Detector
from densehuman.models.zoo import preset
from densehuman.models.zoo_mobile import mobile_model, mobile_parsing_rcnn_a

FIXTURE = Path("/work/shared/fixtures/detectron2/densepose_rcnn_R_50_FPN_s1x/reference.npz")
# The paper's Table 1 columns (with its parameter counts), then the test-tuned (B), the CPU-trainable (B) and
# detectron2's DensePose R-CNN R-50-FPN s1x (with the decoder), the speed reference of the issue.
TABLE1 = {
    "densepose_rcnn_r50_fpn_legacy": 59.73,
    "densepose_parsing_rcnn_r50_fpn": 54.36,
    "mobile_parsing_rcnn_a": 11.35,
    "mobile_parsing_rcnn_b": 3.35,
    "mobile_parsing_rcnn_b_test_tuned": 3.35,
    "mobile_parsing_rcnn_b_cpu": None,
    "densepose_rcnn_r50_fpn": None,
}
B = "mobile_parsing_rcnn_b"
REFERENCE = "densepose_rcnn_r50_fpn"
# The paper's Table 2: backbone -> (timm name, params of the whole model in M, CPU FPS), every row (A)'s architecture
# with that backbone: 23 backbones, all in timm. timm renamed two: MnasNet-A1 is ``semnasnet_100``, MnasNet-B1
# ``mnasnet_100``. (DensePoseFnL's model-zoo page lists the same rows with the CPU FPS missing its leading 1.)
TABLE2: dict[str, tuple[str, float, float]] = {
    "resnet50": ("resnet50", 33.61, 1.34),
    "tf_efficientnet_b3": ("tf_efficientnet_b3", 16.03, 1.37),
    "tf_efficientnet_el": ("tf_efficientnet_el", 17.89, 1.34),
    "mixnet_xl": ("mixnet_xl", 19.10, 1.32),
    "efficientnet_b2": ("efficientnet_b2", 13.68, 1.38),
    "mixnet_l": ("mixnet_l", 14.62, 1.34),
    "tf_efficientnet_em": ("tf_efficientnet_em", 14.57, 1.37),
    "efficientnet_b1": ("efficientnet_b1", 13.03, 1.39),
    "tf_efficientnet_cc_b0_4e": ("tf_efficientnet_cc_b0_4e", 18.32, 1.40),
    "tf_efficientnet_es": ("tf_efficientnet_es", 13.12, 1.39),
    "mixnet_m": ("mixnet_m", 12.39, 1.35),
    "efficientnet_b0": ("efficientnet_b0", 12.10, 1.39),
    "mixnet_s": ("mixnet_s", 11.52, 1.37),
    "tf_mobilenetv3_large_100": ("tf_mobilenetv3_large_100", 12.04, 1.40),
    "mnasnet_a1": ("semnasnet_100", 10.94, 1.38),
    "fbnetc_100": ("fbnetc_100", 11.49, 1.37),
    "mnasnet_b1": ("mnasnet_100", 11.31, 1.37),
    "spnasnet_100": ("spnasnet_100", 11.35, 1.42),
    "tf_mobilenetv3_large_075": ("tf_mobilenetv3_large_075", 10.92, 1.36),
    "tf_mobilenetv3_large_minimal_100": ("tf_mobilenetv3_large_minimal_100", 10.48, 1.36),
    "tf_mobilenetv3_small_100": ("tf_mobilenetv3_small_100", 10.07, 1.35),
    "tf_mobilenetv3_small_075": ("tf_mobilenetv3_small_075", 9.74, 1.33),
    "tf_mobilenetv3_small_minimal_100": ("tf_mobilenetv3_small_minimal_100", 9.58, 1.34),
}


def fixture_image() -> np.ndarray:
    if FIXTURE.is_file():
        return np.asarray(np.load(FIXTURE)["image_bgr"])
    print(f"({FIXTURE} not found: timing a random 240x320 image)")
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


@torch.no_grad()
def set_norm_statistics(model: Detector, image: torch.Tensor) -> None:
    """Every batch norm's statistics from its input on ``image`` (one pass: each sees the layers before it set)."""

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        if x.dim() == 4 and x.shape[0] == 1:
            module.running_mean.copy_(x.mean(dim=(0, 2, 3)))  # type: ignore[operator]
            module.running_var.copy_(x.var(dim=(0, 2, 3)) + 1e-3)  # type: ignore[operator]

    norms = [m for m in model.modules() if "BatchNorm" in type(m).__name__ and hasattr(m, "running_var")]
    handles = [m.register_forward_pre_hook(hook) for m in norms]
    batch, _ = model.preprocess([image])
    model.backbone(batch)
    for handle in handles:
        handle.remove()


def make_model(name: str | Config, people: int, image_bgr: np.ndarray) -> tuple[Config, Detector]:
    config = preset(name) if isinstance(name, str) else name
    box_head = replace(config.model.box_head, detections_per_image=people)
    config = replace(config, model=replace(config.model, box_head=box_head))
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    import cv2

    short = config.input.min_size_test
    h, w = image_bgr.shape[:2]
    resized = cv2.resize(image_bgr, (round(w * short / h), short))
    set_norm_statistics(model, torch.from_numpy(np.ascontiguousarray(resized[..., ::-1])).permute(2, 0, 1))
    return config, model


def size_mb(path: Path) -> float:
    return (path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*"))) / 1e6


def seconds(predictor: Predictor, image: np.ndarray, runs: int, warmup: int) -> tuple[float, int]:
    """Median seconds of ``runs`` calls after ``warmup`` (``detectron2_speed.time_predictor``), and people found."""
    times, people = time_predictor(predictor, image, runs, warmup)
    return statistics.median(times), people


def table1(tmp: Path, image: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    print("\nTable 1: the presets against DensePose R-CNN R-50-FPN (fp32, median s/img, --people detections)")
    print("| model | params (M) | paper (M) | fp32 MB | s/img @800 | s/img @512 | people |")
    print("|---|---|---|---|---|---|---|")
    at800: dict[str, float] = {}
    at512: dict[str, float] = {}
    for name in TABLE1 if not args.quick else (B, REFERENCE):
        paper = TABLE1[name]
        config, model = make_model(name, args.people, image)
        path = save_checkpoint(tmp / name, 0, model, to_dict(config))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        cells = []
        for short in (800, 512):
            predictor = Predictor(path, min_score=0.0, input_size=(short, round(short * 1333 / 800)))
            s, people = seconds(predictor, image, args.runs, args.warmup)
            cells.append(s)
        at800[name], at512[name] = cells
        paper_cell = "-" if paper is None else f"{paper:.2f}"
        timing = f"{cells[0]:.3f} | {cells[1]:.3f} | {people}"
        print(f"| {name} | {params:.2f} | {paper_cell} | {size_mb(path):.1f} | {timing} |", flush=True)
    if B in at800 and REFERENCE in at800:
        ratios = f"{at800[REFERENCE] / at800[B]:.1f}x at 800, {at512[REFERENCE] / at512[B]:.1f}x at 512"
        print(f"(B) fp32 is faster than R-50-FPN by {ratios} (target: at least 4x)")
    return at800


def table2(tmp: Path, image: np.ndarray, args: argparse.Namespace) -> None:
    """The paper's backbone sweep: (A)'s architecture (FPN 256, conv box head, ASPP + 4 convs, P2 32x32) on each
    backbone, random weights, timed at the paper's 800 px with ``--people`` detections."""
    import timm

    print(f"\nTable 2: (A) on the paper's backbones (fp32, random weights, {args.people} detections, short edge 800)")
    print("| paper's backbone | timm name | params (M) | paper (M) | s/img | FPS | paper CPU FPS |")
    print("|---|---|---|---|---|---|---|")
    known = set(timm.list_models())
    rows = list(TABLE2.items())[-4:] if args.quick else TABLE2.items()
    for paper_name, (timm_name, paper_params, paper_fps) in rows:
        if timm_name not in known:
            print(f"| {paper_name} | {timm_name}: not in timm {timm.__version__} | - | {paper_params} | - | - | - |")
            continue
        base = mobile_parsing_rcnn_a()
        config = replace(base, name=f"a_{timm_name}", model=replace(base.model, backbone=replace(
            base.model.backbone, timm_name=timm_name)))  # fmt: skip
        config, model = make_model(config, args.people, image)
        path = save_checkpoint(tmp / f"t2_{timm_name}", 0, model, to_dict(config))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        predictor = Predictor(path, min_score=0.0, input_size=(800, 1333))
        s, _ = seconds(predictor, image, args.runs, args.warmup)
        print(
            f"| {paper_name} | {timm_name} | {params:.2f} | {paper_params:.2f} | {s:.3f} | {1 / s:.2f} | {paper_fps} |",
            flush=True,
        )


# The paper's Table 3: (neck, channels) -> (params in M, CPU FPS).
TABLE3 = {("fpn", 256): (11.35, 1.42), ("bifpn", 256): (10.53, 1.41), ("bifpn", 112): (4.41, 1.78),
          ("bifpn", 88): (3.82, 1.87), ("bifpn", 64): (3.35, 2.02)}  # fmt: skip


def table3(tmp: Path, image: np.ndarray, args: argparse.Namespace) -> None:
    """The paper's neck and width ablation: (A) (FPN 256), then BiFPN over the expansion features at 256 to 64."""
    print(f"\nTable 3: neck and channels (fp32, random weights, {args.people} detections, short edge 800)")
    print("| neck | channels | params (M) | paper (M) | s/img | FPS | paper CPU FPS |")
    print("|---|---|---|---|---|---|---|")
    for (neck, width), (paper_params, paper_fps) in TABLE3.items():
        base = mobile_parsing_rcnn_a()
        config = replace(
            base, name=f"{neck}{width}", model=mobile_model(width, neck, "expansion" if neck == "bifpn" else "")
        )
        config, model = make_model(config, args.people, image)
        path = save_checkpoint(tmp / f"t3_{neck}{width}", 0, model, to_dict(config))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        s, _ = seconds(Predictor(path, min_score=0.0, input_size=(800, 1333)), image, args.runs, args.warmup)
        row = f"| {neck} | {width} | {params:.2f} | {paper_params:.2f} | {s:.3f} | {1 / s:.2f} | {paper_fps} |"
        print(row, flush=True)


def table4_5(tmp: Path, image: np.ndarray, args: argparse.Namespace) -> None:
    config, model = make_model(B, args.people, image)
    path = save_checkpoint(tmp / "b45", 0, model, to_dict(config))
    print(f"\nTable 4: (B) frames per second against the input's short edge ({args.people} people)")
    print("| short edge | s/img | FPS |")
    print("|---|---|---|")
    for short in (320, 512, 640, 800) if not args.quick else (512, 800):
        predictor = Predictor(path, min_score=0.0, input_size=(short, round(short * 1333 / 800)))
        s, _ = seconds(predictor, image, args.runs, args.warmup)
        print(f"| {short} | {s:.3f} | {1 / s:.1f} |")
    print("\nTable 5: (B) frames per second against the number of people (short edge 512)")
    print("| people | s/img | FPS |")
    print("|---|---|---|")
    for people in (1, 5, 10, 20) if not args.quick else (1, 10):
        config, model = make_model(B, people, image)
        p = save_checkpoint(tmp / f"b5_{people}", 0, model, to_dict(config))
        predictor = Predictor(p, min_score=0.0, input_size=(512, 853))
        s, found = seconds(predictor, image, args.runs, args.warmup)
        print(f"| {found} | {s:.3f} | {1 / s:.1f} |")


def table6(tmp: Path, image: np.ndarray, args: argparse.Namespace) -> None:
    print("\nTable 6: fp32 against int8 (post-training static quantization, x86 kernels), --people detections")
    print("| model | format | MB on disk | s/img @800 | s/img @512 | int8 speed-up @800 / @512 |")
    print("|---|---|---|---|---|---|")
    for name in (B, "mobile_parsing_rcnn_b_cpu") if not args.quick else (B,):
        config, model = make_model(name, args.people, image)
        float_path = save_checkpoint(tmp / f"{name}_6", 0, model, to_dict(config))
        calibration = [fp32_image(image, config, flip) for flip in (False, True)]
        quantize_ptq(model, calibration)
        int8_path = save_int8(model, config, tmp / f"{name}.int8.zip", calibration[:1])
        rows = {}
        for fmt, path in (("fp32", float_path), ("int8", int8_path)):
            cells = []
            for short in (800, 512):
                predictor = Predictor(path, min_score=0.0, input_size=(short, round(short * 1333 / 800)))
                cells.append(seconds(predictor, image, args.runs, args.warmup)[0])
            rows[fmt] = cells
            ratios = [f"{a / b:.2f}x" for a, b in zip(rows["fp32"], cells, strict=True)]
            speedup = "" if fmt == "fp32" else " / ".join(ratios)
            print(f"| {name} | {fmt} | {size_mb(path):.2f} | {cells[0]:.3f} | {cells[1]:.3f} | {speedup} |")


def fp32_image(image_bgr: np.ndarray, config: Config, flip: bool) -> torch.Tensor:
    from densehuman.engine.evaluation import resize_for_test

    rgb = np.ascontiguousarray(image_bgr[:, ::-1, ::-1] if flip else image_bgr[..., ::-1])
    resized = resize_for_test(rgb, config.input.min_size_test, config.input.max_size_test)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    parser.add_argument("--people", type=int, default=10, help="detections per image in Tables 1, 4 and 6")
    parser.add_argument("--tables", default="1,2,3,4,5,6")
    parser.add_argument("--quick", action="store_true", help="fewer rows (a smoke test of the script)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tables = {t.strip() for t in args.tables.split(",")}
    image = fixture_image()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.runs} after {args.warmup}")
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(folder)
        if "1" in tables:
            table1(tmp, image, args)
        if "2" in tables:
            table2(tmp, image, args)
        if "3" in tables:
            table3(tmp, image, args)
        if "4" in tables or "5" in tables:
            table4_5(tmp, image, args)
        if "6" in tables:
            table6(tmp, image, args)


if __name__ == "__main__":
    main()
