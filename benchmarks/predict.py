"""``densehuman predict`` speed on CPU: images per second end to end, with and without visualizations.

    python benchmarks/predict.py [--images 12] [--presets densepose_rcnn_tiny_cpu densepose_rcnn_r50_fpn]

``bundled`` is the demo model; presets run with random weights, which time the network as well (their detections
hit the preset's cap, so the pictures cost more than with a trained model); nothing is downloaded. The images are
synthetic 512x512 scenes. Each row runs the CLI's own code path into a fresh folder: prediction only (no files),
then all seven visualizations plus the IUV/INDS PNGs and the results file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from densehuman.cli import main as cli
from densehuman.config import to_dict
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.models.build import build_model
from densehuman.models.zoo import preset
from densehuman.synth.engine import SynthJob, run_synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["bundled", "densepose_rcnn_tiny_cpu", "densepose_rcnn_r50_fpn"],
        help="preset names (random weights) or 'bundled' (the demo model)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_synth(SynthJob(root / "ds", images=args.images, seed=3, val_fraction=0.0, preview_count=0), progress=False)
        images = root / "ds" / "images" / "train"
        print("| preset | input short edge | prediction only | + 7 visualizations + IUV/INDS + results |")
        print("|---|---|---|---|")
        for name in args.presets:
            if name == "bundled":
                from densehuman.demo import bundled_model

                model = bundled_model()
                if model is None:
                    raise SystemExit("this install has no bundled model")
                checkpoint, config = str(model), preset("densepose_rcnn_mobilenetv3_cpu")
            else:
                config = preset(name)
                torch.manual_seed(0)
                save_checkpoint(root / name, 0, build_model(config.model), to_dict(config))
                checkpoint = str(root / name / "model_0000000.safetensors")
            rates = []
            for k, (vis, save) in enumerate((("none", "none"), ("segm,u,v,iuv,contour,bbox,texture", "results,iuv"))):
                out = root / f"out_{name}_{k}"
                t0 = time.perf_counter()
                cli(
                    [
                        "predict",
                        str(images),
                        "--model",
                        checkpoint,
                        "--out",
                        str(out),
                        "--min-score",
                        "0.05",
                        "--vis",
                        vis,
                        "--save",
                        save,
                        "--quiet",
                    ]
                )
                rates.append(args.images / (time.perf_counter() - t0))
            print(f"| {name} | {config.input.min_size_test} | {rates[0]:.2f} images/s | {rates[1]:.2f} images/s |")


if __name__ == "__main__":
    main()
