"""Learning curves of the bundled models on the held-out synthetic set: the figures of a run's checkpoints.

    python benchmarks/learning_curve.py --data heldout512 --out curves \\
        --region 500=runs/b/model_0000500.safetensors 1000=runs/b/model_0001000.safetensors ... \\
        --wholebody 500=runs/wb/model_0000500.safetensors ... [--plot learning_curve.png]

Each ``ITERATION=CHECKPOINT`` is scored with ``heldout_eval.py``'s commands (``densehuman predict`` then ``densehuman
evaluate``) on the ``--split`` of ``--data`` (written by ``heldout_eval.py`` when missing); a checkpoint whose figures
are already in ``--out`` is not scored again. Prints one row per checkpoint (box, GPSm, GPS, IOU AP, parsing mIoU;
whole-body AP per part) and plots them against the training iterations. The iteration is the total count of the
model's training (a run continued from another counts the first run's iterations too).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from heldout_eval import region_figures, wholebody_figures


def parse_pairs(items: list[str]) -> list[tuple[int, str]]:
    pairs = []
    for item in items:
        iteration, sep, path = item.partition("=")
        if not sep or not iteration.isdigit():
            raise SystemExit(f"{item!r}: expected ITERATION=CHECKPOINT")
        pairs.append((int(iteration), path))
    return sorted(pairs)


def cached(path: Path, compute: Any) -> dict[str, Any]:
    if path.is_file():
        return dict(json.loads(path.read_text()))
    figures = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1))
    return dict(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="heldout512")
    parser.add_argument("--split", default="val")
    parser.add_argument("--region", nargs="*", default=[], help="ITERATION=CHECKPOINT of the region model")
    parser.add_argument("--wholebody", nargs="*", default=[], help="ITERATION=CHECKPOINT of the whole-body model")
    parser.add_argument("--min-score", type=float, default=0.05)
    parser.add_argument("--out", default="learning-curves")
    parser.add_argument("--plot", default="learning_curve.png")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not (data / "dataset.json").is_file():
        raise SystemExit(f"{data}: no held-out set (write it with benchmarks/heldout_eval.py first)")

    region_rows = []
    for iteration, path in parse_pairs(args.region):
        where = out / f"region_{iteration}"
        f = cached(
            where / "summary.json", lambda w=where, p=path: region_figures(data, args.split, p, w, args.min_score)
        )
        d, p = f["densepose"], f["parsing"]
        region_rows.append(
            (iteration, 100 * d["bbox"]["AP"], 100 * d["gpsm"]["AP"], 100 * d["gps"]["AP"], 100 * d["iou"]["AP"],
             100 * p["mIoU"])
        )  # fmt: skip
    wholebody_rows = []
    for iteration, path in parse_pairs(args.wholebody):
        where = out / f"wholebody_{iteration}"
        f = cached(where / "summary.json", lambda w=where, p=path: wholebody_figures(data, args.split, p, w))
        parts = f["wholebody"]["parts"]
        wholebody_rows.append((iteration, {part: 100 * row["AP"] for part, row in parts.items()}))

    if region_rows:
        print(f"region model on {data} ({args.split})")
        print(f"{'iteration':>9} {'box AP':>7} {'GPSm AP':>8} {'GPS AP':>7} {'IOU AP':>7} {'mIoU':>6}")
        for it, box, gpsm, gps, iou, miou in region_rows:
            print(f"{it:>9} {box:>7.1f} {gpsm:>8.1f} {gps:>7.1f} {iou:>7.1f} {miou:>6.1f}")
    if wholebody_rows:
        names = list(wholebody_rows[0][1])
        print(f"whole-body model on {data} ({args.split}): AP per part")
        print(f"{'iteration':>9} " + " ".join(f"{n:>9}" for n in names))
        for it, aps in wholebody_rows:
            print(f"{it:>9} " + " ".join(f"{aps[n]:>9.1f}" for n in names))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if region_rows:
        its = [r[0] for r in region_rows]
        for column, label in ((1, "box AP"), (2, "GPSm AP"), (4, "IOU AP"), (5, "parsing mIoU")):
            axes[0].plot(its, [r[column] for r in region_rows], "o-", label=label)
        axes[0].set_title("Mobile Parsing R-CNN (B), held-out synthetic set", fontsize=9)
    if wholebody_rows:
        its = [r[0] for r in wholebody_rows]
        for part in wholebody_rows[0][1]:
            axes[1].plot(its, [r[1][part] for r in wholebody_rows], "o-", label=part)
        axes[1].set_title("BODY_135 (body135_cpu), held-out synthetic set", fontsize=9)
    for ax in axes:
        ax.set_xlabel("training iterations")
        ax.set_ylabel("%")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
