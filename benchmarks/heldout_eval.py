"""Score the region model and the whole-body model on a held-out synthetic set, with the package's own commands.

    python benchmarks/heldout_eval.py [--data heldout512] [--images 240] [--seed 2026] [--size 512]
        [--region-model M] [--wholebody-model M] [--split val] [--min-score 0.05] [--out heldout-eval]

The set is written once (``densehuman synth --seed 2026 --size 512 512 --max-people 4 --val-fraction 0.5``: a seed,
an image size and a people count the bundled models were not trained on) and reused when ``--data`` exists. Then,
for the ``--split`` images, exactly what a user runs:

* region model (default: the bundled one): ``densehuman predict --task all`` (box, DensePose, parts) then
  ``densehuman evaluate`` (box AP, GPS / GPSm / IOU AP, the official DensePose protocol) and ``densehuman evaluate
  --task parsing`` (CIHP mIoU, APp);
* whole-body model (default: the bundled one): ``densehuman predict --task wholebody`` then ``densehuman evaluate
  --task wholebody`` (COCO-WholeBody AP per part).

Prints one table (AP in percent as the papers print them; mIoU in percent) and writes every figure to
``--out/figures.json``. A model that is not given and not bundled is skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from densehuman.cli import main as densehuman


def run(*args: str) -> None:
    code = densehuman(list(args))
    if code:
        raise SystemExit(f"densehuman {' '.join(args)} failed with exit code {code}")


def region_figures(data: Path, split: str, model: str, out: Path, min_score: float) -> dict[str, Any]:
    pred = out / "region_predictions"
    start = time.perf_counter()
    run(
        "predict", str(data / "images" / split), "--model", model, "--task", "all", "--out", str(pred),
        "--vis", "none", "--save", "results,parsing", "--min-score", str(min_score), "--overwrite", "--quiet",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    dense = out / "densepose_figures.json"
    run("evaluate", "--gt", str(data / "annotations" / f"densepose_{split}.json"), "--pred",
        str(pred / "results.json"), "--mode", "all", "--out", str(dense), "--quiet")  # fmt: skip
    parsing = out / "parsing_figures.json"
    run("evaluate", "--task", "parsing", "--gt", str(data), "--split", split, "--pred",
        str(pred / "parsing_results.json"), "--out", str(parsing))  # fmt: skip
    d, p = json.loads(dense.read_text()), json.loads(parsing.read_text())
    return {"densepose": d, "parsing": p, "predict_seconds": seconds}


def wholebody_figures(data: Path, split: str, model: str | None, out: Path) -> dict[str, Any]:
    pred = out / "wholebody_predictions"
    args = ["predict", str(data / "images" / split), "--task", "wholebody", "--out", str(pred), "--overwrite"]
    start = time.perf_counter()
    run(*args, *(["--model", model] if model else []), "--quiet")
    seconds = time.perf_counter() - start
    figures = out / "wholebody_figures.json"
    run("evaluate", "--task", "wholebody", "--gt", str(data / "annotations" / f"coco_wholebody_{split}.json"),
        "--pred", str(pred / "wholebody_results.json"), "--out", str(figures))  # fmt: skip
    return {"wholebody": json.loads(figures.read_text()), "predict_seconds": seconds}


def find_number(tree: Any, *keys: str) -> float:
    for key in keys:
        tree = tree[key]
    return float(tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="heldout512", help="the held-out set (written when missing)")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--split", default="val")
    parser.add_argument("--region-model", help="default: the bundled region model")
    parser.add_argument("--wholebody-model", help="default: the bundled whole-body model")
    parser.add_argument("--min-score", type=float, default=0.05, help="detections kept for AP (low, as for COCO)")
    parser.add_argument("--out", default="heldout-eval")
    args = parser.parse_args()

    from densehuman.demo import bundled_model, bundled_wholebody_model

    data, out = Path(args.data), Path(args.out)
    if not (data / "dataset.json").is_file():
        run("synth", "--out", str(data), "--images", str(args.images), "--seed", str(args.seed), "--size",
            str(args.size), str(args.size), "--max-people", "4", "--val-fraction", "0.5", "--quiet")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    region = args.region_model or (str(bundled_model()) if bundled_model() else None)
    wholebody = args.wholebody_model or (str(bundled_wholebody_model()) if bundled_wholebody_model() else None)
    figures: dict[str, Any] = {"data": str(data), "split": args.split}
    rows: list[tuple[str, str, float, str]] = []
    if region:
        r = region_figures(data, args.split, region, out, args.min_score)
        figures["region"] = {"model": region, **r}
        d, p = r["densepose"], r["parsing"]
        rows += [
            ("region", "box AP", 100 * find_number(d, "bbox", "AP"), ">= 60"),
            ("region", "GPSm AP", 100 * find_number(d, "gpsm", "AP"), ">= 40"),
            ("region", "GPS AP", 100 * find_number(d, "gps", "AP"), ""),
            ("region", "IOU AP", 100 * find_number(d, "iou", "AP"), ""),
            ("region", "parsing mIoU", 100 * find_number(p, "mIoU"), ">= 50"),
        ]
    if wholebody:
        w = wholebody_figures(data, args.split, wholebody, out)
        figures["wholebody"] = {"model": wholebody, **w}
        for part, row in w["wholebody"]["parts"].items():
            rows.append(("whole-body", f"{part} AP", 100 * float(row["AP"]), ">= 30" if part == "wholebody" else ""))
    (out / "figures.json").write_text(json.dumps(figures, indent=1))
    print(f"held-out set {data} ({args.split}); region model {region}; whole-body model {wholebody}")
    print(f"{'model':<11} {'figure':<16} {'value':>6}  target")
    for model, name, value, target in rows:  # COCOeval's -1: nothing of that part to score
        shown = f"{value:>6.1f}" if value >= 0 else f"{'n/a':>6}"
        print(f"{model:<11} {name:<16} {shown}  {target}")
    print(f"figures: {out / 'figures.json'}")


if __name__ == "__main__":
    main()
