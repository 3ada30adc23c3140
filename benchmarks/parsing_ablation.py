"""Parsing R-CNN's ablations (the paper's Tables 1-4: PSS, ERR, GCE parts, PBD) on synthetic data, on a CPU.

    python benchmarks/parsing_ablation.py --data DATASET [--iterations 400] [--size 192] [--out RUNS]
        [--variants baseline,pss,...]

Every variant is ``parsing_rcnn_cpu`` (resnet18, 64-channel heads, trained from scratch) with one change, trained for
the same short schedule from the same seed on the dataset's train split and scored on its val split (mIoU, APp50,
APp_vol, PCP50, official algorithm). It prints one table. What a short CPU schedule can show: whether a component
helps the model learn faster at this scale; not the paper's converged numbers, which come from 45k iterations of 16
ImageNet-initialized images on real photographs.

Variants (the paper's rows):
- ``baseline``: no PSS (boxes pooled by FPN level), 14x14 RoIs, no GCE (one 3x3 conv instead of ASPP, no
  non-local), no convolutions after it (Table 1's "baseline");
- ``pss``: + proposals separation sampling (P2 only);
- ``err``: + 32x32 RoIs (Table 2);
- ``aspp``, ``nonlocal``, ``gce``: + ASPP only, + non-local only, + both (Table 3);
- ``gce_4conv_before``: 4 convolutions before GCE; ``pbd``: GCE + 4 convolutions after it, the full Parsing
  R-CNN (Table 4).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"pss": False, "pooler_resolution": 14, "aspp": False, "nonlocal_block": False, "num_convs_after": 0},
    "pss": {"pss": True, "pooler_resolution": 14, "aspp": False, "nonlocal_block": False, "num_convs_after": 0},
    "err": {"pss": True, "pooler_resolution": 32, "aspp": False, "nonlocal_block": False, "num_convs_after": 0},
    "aspp": {"pss": True, "pooler_resolution": 32, "aspp": True, "nonlocal_block": False, "num_convs_after": 0},
    "nonlocal": {"pss": True, "pooler_resolution": 32, "aspp": False, "nonlocal_block": True, "num_convs_after": 0},
    "gce": {"pss": True, "pooler_resolution": 32, "aspp": True, "nonlocal_block": True, "num_convs_after": 0},
    "gce_4conv_before": {
        "pss": True,
        "pooler_resolution": 32,
        "aspp": True,
        "nonlocal_block": True,
        "num_convs_before": 4,
        "num_convs_after": 0,
    },
    "pbd": {"pss": True, "pooler_resolution": 32, "aspp": True, "nonlocal_block": True, "num_convs_after": 4},
}


def run_variant(name: str, data: Path, out: Path, iterations: int, size: int) -> dict[str, Any]:
    from densehuman.config import Config
    from densehuman.engine.trainer import run_training
    from densehuman.models.zoo import preset

    base: Config = preset("parsing_rcnn_cpu")
    parsing = replace(base.model.parsing, **VARIANTS[name])
    config = replace(
        base,
        name=f"parsing_ablation_{name}",
        model=replace(base.model, parsing=parsing),
        input=replace(base.input, min_size_train=(size,), max_size_train=2 * size, min_size_test=size),
        solver=replace(
            base.solver,
            max_iter=iterations,
            steps=(int(iterations * 0.8),),
            warmup_iters=min(100, iterations // 4),
            checkpoint_period=0,
        ),
        data=replace(base.data, num_workers=1, eval_max_images=0),
    )
    started = time.perf_counter()
    result = run_training(config, data, out / name, progress=False)
    figures = json.loads(sorted((out / name).glob("eval_*.json"))[-1].read_text())["parsing"]
    seconds = time.perf_counter() - started
    scores = {key: figures[key] for key in ("mIoU", "APp50", "APp_vol", "PCP50")}
    return {"variant": name, "seconds": seconds, "iterations": result["iteration"], **scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a densehuman synth dataset (train and val)")
    parser.add_argument("--out", type=Path, default=Path("runs/parsing_ablation"))
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--size", type=int, default=192, help="short edge of the training and test images")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    if unknown := [v for v in names if v not in VARIANTS]:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        row = run_variant(name, args.data, args.out, args.iterations, args.size)
        rows.append(row)
        print(f"{name}: mIoU {row['mIoU']:.4f}, APp50 {row['APp50']:.4f}, {row['seconds']:.0f} s", flush=True)
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))

    def pct(value: float | None) -> str:
        return f"{100 * value:7.1f}" if value is not None else f"{'-':>7}"

    print(f"\n{args.iterations} iterations of 4 images at {args.size} px, parsing_rcnn_cpu from scratch, val split")
    print(f"{'variant':18} {'mIoU':>7} {'APp50':>7} {'APp_vol':>7} {'PCP50':>7} {'train s':>8}")
    for row in rows:
        cells = " ".join(pct(row[k]) for k in ("mIoU", "APp50", "APp_vol", "PCP50"))
        print(f"{row['variant']:18} {cells} {row['seconds']:8.0f}")


if __name__ == "__main__":
    main()
