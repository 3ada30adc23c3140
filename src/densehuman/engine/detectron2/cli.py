"""``densehuman convert detectron2``: a detectron2 DensePose checkpoint -> a densehuman checkpoint."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = "convert checkpoints of other frameworks to densehuman checkpoints"
    convert = sub.add_parser("convert", help=text, description=text)
    kinds = convert.add_subparsers(dest="kind", required=True, metavar="KIND")
    text = (
        "a detectron2 DensePose checkpoint (model-zoo model_final_*.pkl, or a .pth of detectron2 training) -> "
        "a densehuman .safetensors checkpoint with its config"
    )
    p = kinds.add_parser("detectron2", help=text, description=text)
    p.add_argument("checkpoint", help="the detectron2 .pkl / .pth file")
    p.add_argument(
        "--config",
        help="its detectron2 config YAML (_BASE_ files resolved) or model-zoo name, e.g. densepose_rcnn_R_50_FPN_s1x "
        "(default: config.yaml beside the checkpoint, the zoo file name, or what the tensors show)",
    )
    p.add_argument("--out", required=True, help="the densehuman checkpoint to write (.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--list-zoo", action="store_true", help="print the supported model-zoo names and exit")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from densehuman.engine.detectron2 import convert_detectron2, zoo_names

    if args.list_zoo:
        print("\n".join(zoo_names()))
        return 0
    imported = convert_detectron2(args.checkpoint, args.out, args.config, overwrite=args.overwrite)
    report = imported.report
    if args.json:
        summary = {
            "checkpoint": args.checkpoint,
            "out": args.out,
            "config": imported.config_source,
            "model": imported.config.name,
            "tensors": report.mapped,
            "notes": report.notes,
        }
        print(json.dumps(summary, indent=2))
    else:
        print(f"config: {imported.config_source}")
        print(report.format())
        print(f"wrote {args.out}")
    return 0
