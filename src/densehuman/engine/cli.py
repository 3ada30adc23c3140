"""``densehuman train``: one command for a CPU, a GPU, or many (``torchrun --nproc-per-node N -m densehuman train``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from densehuman.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = "train a model from a preset on a DensePose-COCO style dataset (synthetic or real)"
    p = sub.add_parser("train", help=text, description=text)
    p.add_argument(
        "--preset",
        help="a named preset (see --list-presets) or a detectron2 model-zoo name; default with a detectron2 --init: "
        "its own config (as `densehuman predict` finds it)",
    )
    p.add_argument(
        "--init",
        help="start from these weights: a densehuman .safetensors checkpoint or a detectron2 .pkl/.pth (fine-tuning)",
    )
    p.add_argument("--data", help="dataset folder (as `densehuman synth` writes it)")
    p.add_argument("--out", help="run folder: config, log, checkpoints, metrics, loss curves")
    p.add_argument("--config", help="YAML file overriding fields of the preset")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="overrides, e.g. solver.max_iter=500 (several after one --set, or --set again; a key once)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--list-presets", action="store_true", help="print the preset names and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from densehuman.config import apply_config_file, apply_overrides, parse_set
    from densehuman.engine.wholebody_config import WHOLEBODY_PRESETS
    from densehuman.models.zoo import PRESETS

    if args.list_presets:
        for name, make in PRESETS.items():
            print(f"{name:34} {(make.__doc__ or '').strip().splitlines()[0] if make.__doc__ else ''}")
        for name, make_wholebody in WHOLEBODY_PRESETS.items():
            doc = (make_wholebody.__doc__ or "").strip().splitlines()
            print(f"{name:34} {doc[0] if doc else ''} (whole-body)")
        return 0
    if args.preset in WHOLEBODY_PRESETS:
        return _run_wholebody(args)
    for flag in ("data", "out"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required")
    data = Path(args.data)
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise FileNotFoundError(f"--init {init}: no such file")
    config = _base_config(args.preset, init)
    if args.config:
        config = apply_config_file(config, args.config)
    if args.set:
        config = apply_overrides(config, parse_set(args.set))
    from densehuman.engine.trainer import run_training

    result = run_training(config, data, Path(args.out), resume=args.resume, progress=not args.quiet, init=init)
    line = f"trained {config.name} to iteration {result['iteration']} in {result['seconds']:.0f} s"
    line += f" ({result['images_per_s']:.2f} images/s)"
    if "eval" in result:
        line += "; val AP " + ", ".join(f"{k} {100 * v:.2f}" for k, v in result["eval"].items())
    print(line)
    print(f"run folder: {args.out}")
    return 0


def _base_config(name: str | None, init: Path | None) -> Config:
    """The config a run starts from: a preset, a detectron2 zoo name, or the config of a detectron2 ``--init``."""
    from densehuman.engine.detectron2 import is_detectron2_checkpoint, read_detectron2_weights
    from densehuman.engine.detectron2.convert import resolve_config
    from densehuman.engine.detectron2.zoo import canonical_name, zoo_config
    from densehuman.models.zoo import PRESETS, preset

    if name is not None:
        if name not in PRESETS and canonical_name(name) is not None:
            return zoo_config(name)
        return preset(name)
    if init is not None and is_detectron2_checkpoint(init):
        config, _ = resolve_config(read_detectron2_weights(init), None)
        return config
    raise ValueError("--preset is required (or a detectron2 checkpoint as --init, whose config is then used)")


def _run_wholebody(args: argparse.Namespace) -> int:
    """``densehuman train --preset body135...``: the whole-body network (``engine.wholebody_trainer``)."""
    from densehuman.config import apply_config_file, apply_overrides, parse_set
    from densehuman.engine.wholebody_config import wholebody_preset
    from densehuman.engine.wholebody_trainer import run_wholebody_training

    for flag in ("data", "out"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required")
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise FileNotFoundError(f"--init {init}: no such file")
    config = wholebody_preset(args.preset)
    if args.config:
        config = apply_config_file(config, args.config)
    if args.set:
        config = apply_overrides(config, parse_set(args.set))
    result = run_wholebody_training(
        config, Path(args.data), Path(args.out), resume=args.resume, progress=not args.quiet, init=init
    )
    line = f"trained {config.name} to iteration {result['iteration']} in {result['seconds']:.0f} s"
    line += f" ({result['images_per_s']:.2f} images/s)"
    if "total_loss" in result:
        line += f"; loss {result['total_loss']:.4g}"
    if result.get("eval"):
        line += "; val AP " + ", ".join(f"{k} {100 * v:.2f}" for k, v in result["eval"].items() if v >= 0)
    print(line)
    print(f"run folder: {args.out}")
    return 0
