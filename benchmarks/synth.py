"""Synthetic data engine throughput: images per second of ``densehuman synth`` (all label files included),
and where the time goes.

    python benchmarks/synth.py [--images 60] [--size 512 512] [--max-people 4] [--workers 2] [--profile 12]

Part 1 runs the real command path (``run_synth``: worker processes, every file, JSON assembly, no preview) into a
temporary folder and reports the steady-state rate (worker start-up is timed separately). Part 2 profiles a few
images in this process and splits the time by stage.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import tempfile
import time
from pathlib import Path

from densehuman.synth.engine import PARTIAL, SynthJob, _init_worker, _make_one, run_synth
from densehuman.synth.generator import SynthConfig

STAGES = {
    "scene: shape + pose + outfit sampling": [
        r"shapes.py:\d+\(sample\)",
        r"poses.py:\d+\(sample\)",
        r"appearance.py:\d+\(sample\)",
    ],
    "scene: Anny forward (posing)": [r"body_model.py:\d+\(pose\)"],
    "scene: background": [r"backgrounds.py:\d+\(sample\)"],
    "render: rasterize": [r"rasterize.py:\d+\(rasterize\)"],
    "render: labels + albedo (outfit textures)": [r"appearance.py:\d+\(labels_and_albedo\)"],
    "render: normals + shading + AA + noise": [
        r"render.py:\d+\(vertex_normals\)",
        r"render.py:\d+\(_antialias_edges\)",
        r"render.py:\d+\(_camera_effects\)",
    ],
    "labels: whole-body landmarks": [r"landmarks.py:\d+\(__call__\)", r"landmarks.py:\d+\(extras\)"],
    "labels: keypoint visibility": [r"annotate.py:\d+\(keypoint_visibility\)"],
    "labels: DensePose points + dp_masks": [r"annotate.py:\d+\(sample_densepose\)"],
    "labels: person RLE": [r"annotate.py:\d+\(encode_mask\)"],
    "write: all files of an image": [r"writers.py:\d+\(write_image_files\)"],
    "total: one image made": [r"generator.py:\d+\(make\)"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--max-people", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=int, default=12, help="images profiled in-process (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = SynthConfig(size=(args.size[0], args.size[1]), max_people=args.max_people)

    with tempfile.TemporaryDirectory() as tmp:
        # Start-up alone: a 'workers'-image job measures process start + model loading per worker.
        warm = SynthJob(
            Path(tmp) / "warm",
            images=args.workers,
            seed=args.seed,
            config=config,
            workers=args.workers,
            preview_count=0,
        )
        t0 = time.perf_counter()
        run_synth(warm, progress=False)
        startup = time.perf_counter() - t0
        job = SynthJob(
            Path(tmp) / "run", images=args.images, seed=args.seed, config=config, workers=args.workers, preview_count=0
        )
        t0 = time.perf_counter()
        manifest = run_synth(job, progress=True)
        total = time.perf_counter() - t0
        people = sum(c["people"] for c in manifest["counts"].values())
        size_mb = sum(f.stat().st_size for f in (Path(tmp) / "run").rglob("*") if f.is_file()) / 2**20
        print()
        print("| figure | value |\n|---|---|")
        print(
            f"| images | {args.images} at {args.size[0]}x{args.size[1]}, 1..{args.max_people} people "
            f"({people / args.images:.2f} visible people per image) |"
        )
        print(f"| workers | {args.workers} |")
        print(f"| wall time, whole command | {total:.1f} s |")
        print(f"| throughput, whole command | {args.images / total:.2f} images/s |")
        print(
            f"| throughput, generation only (excl. start-up ~{startup:.1f} s) | "
            f"{args.images / max(total - startup, 1e-9):.2f} images/s |"
        )
        print(f"| output size | {size_mb / args.images * 1024:.0f} KiB per image |")

        if args.profile > 0:
            root = Path(tmp) / "profile"
            (root / PARTIAL / "records").mkdir(parents=True)
            _init_worker(config, args.seed, root, ["train"] * args.profile)
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            for i in range(args.profile):
                _make_one(i)
            prof.disable()
            wall = time.perf_counter() - t0
            stats = pstats.Stats(prof)
            print(
                f"\nOne process, {args.profile} images, {wall / args.profile * 1000:.0f} ms per image "
                f"(under the profiler):\n"
            )
            print("| stage | ms per image | share |\n|---|---|---|")
            for stage, patterns in STAGES.items():
                secs = 0.0
                for pattern in patterns:
                    for (file, line, func), row in stats.stats.items():  # type: ignore[attr-defined]
                        if re.search(pattern, f"{Path(file).name}:{line}({func})"):
                            secs += row[3]  # cumulative time
                print(f"| {stage} | {secs / args.profile * 1000:.1f} | {secs / wall * 100:.0f}% |")


if __name__ == "__main__":
    main()
