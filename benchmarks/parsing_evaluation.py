"""Human-parsing evaluation speed: mIoU, APp/PCP, APr and APh on 500 synthetic CIHP images of 4 people each.

    python benchmarks/parsing_evaluation.py [--images 500] [--people 4] [--size 512] [--keep DIR]

The ground truth is drawn by hand with NumPy (each person a box cut into bands of part classes, later people
painted over earlier ones, with CIHP's Category_ids, Human_ids and Instance_ids files), and the results are the
people with their boxes shifted a few pixels, a tenth of their pixels relabelled as another of their parts, and one
extra low-scoring false detection per image, so that no figure is 0 or 1. The target is under 10 s for the
evaluation on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from densehuman import atomic
from densehuman.data.parsing_folders import open_parsing_split
from densehuman.evaluation.parsing import ParsingEvaluation
from densehuman.evaluation.parsing_results import ParsingDetection, load_parsing_results, save_parsing_results

BANDS = (2, 13, 5, 14, 5, 15, 9, 16, 17, 18)  # hair, face, upper clothes with arms, pants, legs, shoes


def draw_person(height: int, width: int) -> np.ndarray:
    """(h, w) part labels of one person: horizontal bands of classes, arms down the sides."""
    rows = np.linspace(0, len(BANDS) / 2, height, endpoint=False).astype(int)
    person = np.zeros((height, width), np.uint8)
    for r in range(height):
        band = BANDS[min(2 * rows[r], len(BANDS) - 1)]
        person[r] = band
        if band == 5:
            person[r, : width // 5], person[r, -width // 5 :] = 14, 15
        if band in (9, 16):
            person[r, : width // 2], person[r, width // 2 :] = 16, 17
    return person


def make_dataset(root: Path, images: int, people: int, size: int, rng: np.random.Generator) -> list[ParsingDetection]:
    folder = root / "instance-level_human_parsing" / "Validation"
    names, detections = [], []
    for i in range(images):
        name = f"{i:06d}"
        names.append(name)
        category = np.zeros((size, size), np.uint8)
        human = np.zeros((size, size), np.uint8)
        boxes = []
        for k in range(1, people + 1):
            h, w = int(rng.integers(size // 3, size * 3 // 4)), int(rng.integers(size // 8, size // 4))
            y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
            labels = draw_person(h, w)
            category[y : y + h, x : x + w] = labels
            human[y : y + h, x : x + w] = k
            boxes.append((x, y, w, h))
        pairs = np.unique(human.astype(np.int64) * 256 + category)
        instance = np.zeros_like(category)
        lines = []
        for part_id, key in enumerate(p for p in pairs if p // 256 and p % 256):
            instance[(human == key // 256) & (category == key % 256)] = part_id + 1
            lines.append(f"{part_id + 1} {key % 256} {key // 256}")
        atomic.write_image(folder / "Images" / f"{name}.jpg", np.zeros((size, size, 3), np.uint8))
        atomic.write_image(folder / "Category_ids" / f"{name}.png", category)
        atomic.write_image(folder / "Human_ids" / f"{name}.png", human)
        atomic.write_image(folder / "Instance_ids" / f"{name}.png", instance)
        atomic.write_bytes(folder / "Instance_ids" / f"{name}.txt", ("\n".join(lines) + "\n").encode())
        for k, (x, y, w, h) in enumerate(boxes, start=1):
            grid = np.where(human[y : y + h, x : x + w] == k, category[y : y + h, x : x + w], 0).astype(np.uint8)
            noisy = (rng.random(grid.shape) < 0.1) & (grid > 0)  # relabelled to another of the person's parts
            grid[noisy] = rng.choice(np.unique(grid[grid > 0]), size=int(noisy.sum())).astype(np.uint8)
            dx, dy = (int(v) for v in rng.integers(-4, 5, size=2))
            detections.append(ParsingDetection(i + 1, 1, (x + dx, y + dy, w, h), float(rng.random()), grid))
        fake = draw_person(size // 3, size // 8)
        detections.append(ParsingDetection(i + 1, 1, (0.0, 0.0, size // 8, size // 3), 0.05 * rng.random(), fake))
    (folder.parent / "val_id.txt").write_text("\n".join(names) + "\n")
    return detections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--keep", help="write the dataset here (or reuse it) instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp) / "cihp"
        results = root / "results.json"
        started = time.perf_counter()
        if not results.is_file():
            save_parsing_results(
                results, make_dataset(root, args.images, args.people, args.size, np.random.default_rng(0))
            )
        made = time.perf_counter() - started
        started = time.perf_counter()
        split = open_parsing_split(root, "val", "cihp")
        detections = load_parsing_results(results, {e.image_id for e in split}, {1}, split.classes.num_classes)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        figures = ParsingEvaluation(split, detections).run()
        evaluated = time.perf_counter() - started
    print(f"{'images':>8} {'people':>8} {'detections':>11} {'size':>6}")
    print(f"{figures['images']:>8} {figures['gt_people']:>8} {figures['detections']:>11} {args.size:>6}")
    print(f"\n{'stage':<28} {'seconds':>8}")
    print(f"{'(make the dataset)':<28} {made:8.2f}")
    print(f"{'open split + load results':<28} {loaded:8.2f}")
    for stage, seconds in figures["seconds"].items():
        print(f"{'  ' + stage:<28} {seconds:8.2f}")
    print(f"{'evaluation (all stages)':<28} {evaluated:8.2f}   target < 10 s")
    print(f"\nmIoU {figures['mIoU']:.4f}  APp50 {figures['APp50']:.4f}  APp_vol {figures['APp_vol']:.4f}  ", end="")
    print(f"PCP50 {figures['PCP50']:.4f}  APr50 {figures['APr50']:.4f}  APh50 {figures['APh50']:.4f}")


if __name__ == "__main__":
    main()
