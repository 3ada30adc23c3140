"""Time of ``make_targets`` (BODY_135 confidence maps, PAFs and weights) per training image on one core.

    python benchmarks/wholebody_targets.py [--people 4] [--size 368] [--repeats 300]

The people are synthetic but shaped like real ones: body points spread round a centre, feet at the ankles, hands at
the wrists, the face round the nose. Two cases are timed: every BODY_135 point labeled (a whole-body source such as
COCO-WholeBody; the worst case) and a COCO-17 source with an ignore region. The target is < 5 ms per image.
Wall time and this process's CPU time are both printed: on a shared machine the first includes waiting.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from densehuman.models.bottomup.targets import make_targets


def synthetic_people(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 135, 3) whole-body keypoints with every point labeled (v = 2)."""
    out = np.zeros((count, 135, 3))
    for p in range(count):
        scale = rng.uniform(0.25, 0.45) * size
        centre = rng.uniform(0.25 * size, 0.75 * size, 2)
        body = centre + rng.normal(0, 0.35 * scale, (19, 2))
        out[p, :19, :2] = body
        out[p, 19:22, :2] = body[15] + rng.normal(0, 0.04 * scale, (3, 2))  # left foot at the left ankle
        out[p, 22:25, :2] = body[16] + rng.normal(0, 0.04 * scale, (3, 2))
        out[p, 25:45, :2] = body[9] + rng.normal(0, 0.06 * scale, (20, 2))  # left hand at the left wrist
        out[p, 45:65, :2] = body[10] + rng.normal(0, 0.06 * scale, (20, 2))
        out[p, 65:135, :2] = body[0] + rng.normal(0, 0.05 * scale, (70, 2))  # face round the nose
    out[..., 2] = 2
    return out


def time_case(name: str, repeats: int, run: Callable[[], object]) -> None:
    for _ in range(10):  # warm-up
        run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    ms = np.array(wall) * 1e3
    cpu_ms = np.array(cpu) * 1e3
    print(
        f"{name:<38} wall median {np.median(ms):5.2f} ms, p90 {np.percentile(ms, 90):5.2f}, min {ms.min():5.2f}"
        f" | CPU median {np.median(cpu_ms):5.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--size", type=int, default=368)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    kpts = synthetic_people(args.people, args.size, rng)
    size = (args.size, args.size)
    print(f"{args.people} people, {args.size}x{args.size} input, grid {args.size // 8}x{args.size // 8}")

    every = np.ones(135, dtype=bool)
    time_case("whole body: all 135 points labeled", args.repeats, lambda: make_targets(kpts, size, every))
    coco = np.zeros(135, dtype=bool)
    coco[:17] = True
    ignore = np.zeros(size, dtype=bool)
    ignore[: args.size // 4, : args.size // 3] = True
    time_case("COCO-17 source + ignore mask", args.repeats, lambda: make_targets(kpts, size, coco, ignore))


if __name__ == "__main__":
    main()
