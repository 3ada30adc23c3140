"""``densehuman export``: a trained model as int8 (post-training static quantization) or as ONNX for onnxruntime.

The result runs wherever a checkpoint does: ``densehuman predict --model EXPORT`` and ``Predictor(EXPORT)``.
Quantization-aware training is a training option instead (``densehuman train --set quantization.qat=true``); its run
folder ends with the int8 model ``model_final.int8.zip``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built without PyTorch (`densehuman --help` stays fast)
    from torch import Tensor

    from densehuman.config import Config
    from densehuman.models.detector import Detector

FORMATS = ("int8", "onnx")
BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")
AGREEMENT_SCORE = 0.1


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = (
        "export a trained model: int8 (post-training static quantization, calibrated on your images) or ONNX "
        "(run with onnxruntime); the result is a --model for predict and evaluate"
    )
    p = sub.add_parser("export", help=text, description=text)
    p.add_argument("--format", required=True, choices=FORMATS, help="int8 (one .zip file) or onnx (a folder)")
    p.add_argument(
        "--model",
        required=True,
        help="a run folder, a densehuman checkpoint, or a preset name (region models); a whole-body checkpoint or "
        "caffemodel (--format onnx)",
    )
    p.add_argument("--checkpoint", help="weights for a preset given as --model")
    p.add_argument(
        "--out", required=True, help="the .zip file (int8) or folder (onnx) to write; a whole-body model: a .onnx file"
    )
    p.add_argument(
        "--images",
        nargs="+",
        required=True,
        help="images, folders or globs: calibration images for int8 (representative of what the model will see), "
        "tracing images for onnx (the model must detect someone in the first)",
    )
    p.add_argument("--num-images", type=int, default=32, help="use at most this many of --images for calibration (32)")
    p.add_argument("--backend", default="x86", choices=BACKENDS, help="int8 kernels: x86 (default) or qnnpack (ARM)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress messages")


def read_images(items: Sequence[str], config: Config, limit: int) -> list[Tensor]:
    """The first ``limit`` images of ``items`` (files, folders, globs), read and resized as the model's test
    transform does, as (3, H, W) uint8 RGB tensors."""
    import numpy as np
    import torch

    from densehuman.engine.evaluation import resize_for_test
    from densehuman.inference.cli import IMAGE_SUFFIXES, collect_inputs
    from densehuman.validation.images import read_image

    if limit < 1:
        raise ValueError(f"--num-images must be at least 1, got {limit}")
    paths = [p for p in collect_inputs(list(items)) if p.suffix.lower() in IMAGE_SUFFIXES][:limit]
    if not paths:
        raise ValueError(f"no images in {' '.join(items)}")
    out = []
    for path in paths:
        rgb = resize_for_test(read_image(path), config.input.min_size_test, config.input.max_size_test)
        out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous())
    return out


def load_float(model: str, checkpoint: str | None) -> tuple[Config, Detector]:
    """The float model as trained (not fused for inference): what both exports start from."""
    from densehuman.export import exported_kind
    from densehuman.inference.predictor import Predictor

    if exported_kind(model) is not None:
        raise ValueError(f"{model} is already an exported model; export the float run folder or checkpoint")
    predictor = Predictor(model, checkpoint, optimize=False)
    return predictor.config, predictor.model.eval()


def export_model(
    model: Detector,
    config: Config,
    out: str | Path,
    images: Sequence[Tensor],
    *,
    format: str,
    backend: str = "x86",
    overwrite: bool = False,
) -> Path:
    """Python API of ``densehuman export``: write ``model`` (float, as loaded) as ``format`` ("int8" or "onnx") to
    ``out``; ``images`` as ``read_images`` gives them. The float model is changed in place by int8 quantization."""
    target = Path(out)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite (overwrite=True) to replace it")
    if format == "onnx":
        from densehuman.export.onnx import export_onnx

        return export_onnx(model, config, target, images[:1], overwrite=overwrite)
    from densehuman.export.quantize import quantize_ptq, save_int8

    if target.is_dir():
        raise ValueError(f"{target} is a folder; an int8 export is one file (for example model.int8.zip)")
    quantize_ptq(model, list(images), backend)
    return save_int8(model, config, target, images[:1])


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _agreement(reference: Detector, exported_path: Path, image: Tensor) -> str:
    """One line comparing the float model and the written export on one image (people found, box error)."""
    import torch

    from densehuman.export import load_exported

    loaded = load_exported(exported_path)
    assert loaded is not None
    with torch.inference_mode():
        a = reference.predict([image], score_threshold=AGREEMENT_SCORE)[0]
        b = loaded[1].predict([image], score_threshold=AGREEMENT_SCORE)[0]
    line = f"first image, people scoring >= {AGREEMENT_SCORE}: float model {len(a.boxes)}, export {len(b.boxes)}"
    if len(a.boxes) and len(b.boxes):
        distance = torch.cdist(a.boxes, b.boxes, p=1.0).min(dim=1).values / 4
        line += f"; mean box corner difference {float(distance.mean()):.2f} px"
    return line


def run_wholebody(args: argparse.Namespace) -> int:
    """``--model`` is a whole-body network: one ONNX file (``export.wholebody_onnx``); int8 is for region models."""
    from densehuman.export.wholebody_onnx import export_wholebody_onnx
    from densehuman.inference.cli import IMAGE_SUFFIXES, collect_inputs
    from densehuman.inference.wholebody import WholeBodyPredictor
    from densehuman.validation.images import read_image

    if args.format != "onnx":
        raise ValueError(
            f"{args.model} is a whole-body network: export it with --format onnx (int8 is for region models)"
        )
    say = (lambda _: None) if args.quiet else print
    started = time.perf_counter()
    images = [p for p in collect_inputs(args.images) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise ValueError(f"no images in {', '.join(args.images)}")
    predictor = WholeBodyPredictor(args.model)
    agreement = export_wholebody_onnx(
        predictor.net,
        predictor.config,
        args.out,
        net_height=predictor.net_height,
        example=read_image(images[0]),
        overwrite=args.overwrite,
    )
    say(
        f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.2f} MiB, net height {predictor.net_height}) in "
        f"{time.perf_counter() - started:.0f} s; onnxruntime vs PyTorch on {images[0].name}: largest difference "
        f"{agreement['max_abs_diff']:.2g} (outputs up to {agreement['max_abs']:.2g})"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from densehuman.inference.wholebody_cli import is_wholebody_model

    if is_wholebody_model(args.model):
        return run_wholebody(args)
    say = (lambda _: None) if args.quiet else print
    started = time.perf_counter()
    config, model = load_float(args.model, args.checkpoint)
    limit = args.num_images if args.format == "int8" else 1
    images = read_images(args.images, config, limit)
    say(
        f"{config.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; exporting as {args.format}"
    )
    reference = None
    if not args.quiet:
        _, reference = load_float(args.model, args.checkpoint)  # the int8 path changes `model` in place
        say(f"{'calibrating on' if args.format == 'int8' else 'tracing on'} {len(images)} image(s)")
    out = export_model(
        model, config, args.out, images, format=args.format, backend=args.backend, overwrite=args.overwrite
    )
    say(f"wrote {out} ({_size(out) / 2**20:.2f} MiB) in {time.perf_counter() - started:.0f} s")
    if reference is not None:
        say(_agreement(reference, out, images[0]))
    return 0
