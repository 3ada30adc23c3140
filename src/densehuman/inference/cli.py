"""``densehuman predict``: dense pose and human parts for images, folders and videos, as pictures and as data;
whole-body keypoints (OpenPose BODY_135) with ``--task wholebody`` (``densehuman.inference.wholebody_cli``)."""

from __future__ import annotations

import argparse
import dataclasses
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densehuman.inference.outputs import (
    DENSEPOSE_SAVE,
    DENSEPOSE_VIS,
    PARSING_SAVE,
    PARSING_VIS,
    SAVE_KINDS,
    VIS_KINDS,
    image_targets,
    write_image_outputs,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
TASKS = ("auto", "densepose", "parsing", "all", "wholebody")


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = (
        "run a model on images, folders or videos: dense pose (visualizations, IUV/INDS PNGs, results JSON, arrays) "
        "and human parts (parsing pictures, CIHP-style maps, parsing results JSON); whole-body keypoints with "
        "--task wholebody (skeleton pictures, OpenPose JSON, COCO-WholeBody results)"
    )
    p = sub.add_parser("predict", help=text, description=text)
    p.add_argument("inputs", nargs="+", help="images, videos, folders (searched recursively) or glob patterns")
    p.add_argument(
        "--model",
        help="a run folder, a densehuman checkpoint, a preset name, or a detectron2 DensePose checkpoint (.pkl/.pth); "
        "default: the bundled model (trained on synthetic people only). --task wholebody: a whole-body checkpoint, "
        "an OpenPose BODY_135 .caffemodel or a preset (body135, body135_cpu: random weights, for tests)",
    )
    p.add_argument("--checkpoint", help="weights for a preset given as --model")
    p.add_argument(
        "--config",
        help="for a detectron2 checkpoint: its detectron2 config YAML or model-zoo name (default: config.yaml beside "
        "it, the zoo file name, or what its tensors show)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="keep people scoring at least this (0.5; --task wholebody: 0, every person the assembly keeps)",
    )
    p.add_argument(
        "--task",
        default="auto",
        choices=TASKS,
        help="densepose, parsing, or all (both, from a two-branch model), or wholebody (BODY_135 keypoints, from a "
        "whole-body model); default: what the model has",
    )
    p.add_argument(
        "--net-height",
        type=int,
        help="--task wholebody: network input height, a multiple of 8 (default: the model's, e.g. 480 for BODY_135)",
    )
    p.add_argument(
        "--wholebody-model",
        help="with a region task: also run this whole-body model (a checkpoint, ONNX export, caffemodel, or 'bundled') "
        "and merge its people with the region detections: <name>_people.json per image (box, score, keypoint groups) "
        "and <name>_wholebody.png",
    )
    p.add_argument(
        "--exact-maps",
        action="store_true",
        help="--task wholebody: parse OpenPose's x8-upsampled maps (slower); default: the same parse computed from "
        "the network's stride-8 maps, around their maxima",
    )
    p.add_argument(
        "--vis",
        help=f"comma list of: {','.join(VIS_KINDS)} (default: segm,contour,bbox for dense pose, parsing,bbox for "
        "parsing)",
    )
    p.add_argument(
        "--save",
        help=f"comma list of: {','.join(SAVE_KINDS)} or 'none' (default: results,iuv for dense pose, parsing for "
        "parsing)",
    )
    p.add_argument(
        "--texture",
        help="texture atlas for --vis texture: 800 high x 1200 wide, 4 rows x 6 columns of 200 px tiles "
        "(default: a checkerboard per chart)",
    )
    p.add_argument("--side-by-side", action="store_true", help="put each picture next to the input image")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def collect_inputs(items: list[str]) -> list[Path]:
    """Files, folders (recursive) and globs -> image paths in a stable order (missing inputs are errors)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in wanted and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise ValueError(f"{item}: no such file, folder or matching pattern")
            out += [m for m in matches if m.is_file()]
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


@dataclass(frozen=True)
class _Planned:
    """One input and every file it will write."""

    path: Path
    stem: str
    video: bool
    targets: tuple[Path, ...]


def plan_outputs(inputs: list[Path], out: Path, vis: list[str], save: list[str]) -> list[_Planned]:
    """The files each input writes (names from the input's stem; numbered when two inputs share a stem)."""
    unique_stems = len(inputs) == len({p.stem for p in inputs})
    planned = []
    for image_id, path in enumerate(inputs, start=1):
        stem = path.stem if unique_stems else f"{image_id:06d}_{path.stem}"
        if path.suffix.lower() in VIDEO_SUFFIXES:
            planned.append(_Planned(path, stem, True, tuple(out / f"{stem}_{v}.mp4" for v in vis)))
            continue
        planned.append(_Planned(path, stem, False, tuple(image_targets(out, stem, vis, save))))
    return planned


def choose_outputs(args: argparse.Namespace, has_densepose: bool, has_parsing: bool) -> tuple[list[str], list[str]]:
    """(vis, save) for the task asked and the branches the model has; asking for what it lacks is an error."""
    if args.task in ("densepose", "all") and not has_densepose:
        raise ValueError(f"--task {args.task}: the model has no DensePose branch")
    if args.task in ("parsing", "all") and not has_parsing:
        raise ValueError(f"--task {args.task}: the model has no parsing branch")
    densepose = has_densepose and args.task != "parsing"
    parsing = has_parsing and args.task != "densepose"
    default_vis = (["segm", "contour"] if densepose else []) + (["parsing"] if parsing else []) + ["bbox"]
    default_save = (["results", "iuv"] if densepose else []) + (["parsing"] if parsing else [])
    vis = default_vis if args.vis is None else [v for v in args.vis.split(",") if v and v != "none"]
    save = default_save if args.save is None else [v for v in args.save.split(",") if v and v != "none"]
    for on, vis_kinds, save_kinds, what in (
        (densepose, DENSEPOSE_VIS, DENSEPOSE_SAVE, "dense pose outputs, but this run has no DensePose branch"),
        (parsing, PARSING_VIS, PARSING_SAVE, "parsing outputs, but this run has no parsing branch"),
    ):
        bad = [v for v in vis if v in vis_kinds] + [v for v in save if v in save_kinds]
        if bad and not on:
            raise ValueError(f"{', '.join(bad)}: {what}")
    return vis, save


def read_atlas(path: Path) -> Any:
    """A texture atlas image (RGB), checked for the 4 x 6 tile layout; errors name the file."""
    from densehuman.validation import InputError
    from densehuman.validation.images import read_image
    from densehuman.visualization.densepose import check_atlas

    try:
        atlas = read_image(path)
    except FileNotFoundError:
        raise InputError(path, "no such texture atlas (--texture)") from None
    try:
        check_atlas(atlas)
    except ValueError as err:
        raise InputError(path, f"--texture: {err}") from None
    return atlas


def _model_or_bundled(model: str | None) -> str:
    if model:
        return model
    from densehuman.demo import bundled_model

    bundled = bundled_model()
    if bundled is None:
        raise ValueError("no --model given and this install has no bundled model: pass --model RUN|CHECKPOINT|PRESET")
    print(f"using the bundled model {bundled.name} (trained on synthetic people only; --model for another)")
    return str(bundled)


def _wholebody_for_merge(args: argparse.Namespace) -> Any:
    """The ``--wholebody-model`` predictor (``bundled``: the package's whole-body model)."""
    from densehuman.inference.wholebody import WholeBodyPredictor
    from densehuman.inference.wholebody_cli import is_wholebody_model

    name = args.wholebody_model
    if name == "bundled":
        from densehuman.demo import bundled_wholebody_model

        bundled = bundled_wholebody_model()
        if bundled is None:
            raise ValueError("--wholebody-model bundled: this install has no bundled whole-body model")
        name = str(bundled)
    if not is_wholebody_model(name):
        raise ValueError(f"--wholebody-model {name}: not a whole-body model (checkpoint, ONNX export or caffemodel)")
    return WholeBodyPredictor(name, net_height=args.net_height, device=args.device, exact_maps=args.exact_maps)


def _write_merged(out: Path, stem: str, rgb: Any, region: Any, wholebody: Any) -> None:
    from densehuman import atomic
    from densehuman.inference.merge import people_json
    from densehuman.visualization.wholebody import draw_wholebody

    atomic.write_json(out / f"{stem}_people.json", people_json(region, wholebody), indent=1)
    atomic.write_image(out / f"{stem}_wholebody.png", draw_wholebody(rgb, wholebody.people)[..., ::-1].copy())


def _check_names(text: str | None, kinds: tuple[str, ...], option: str) -> None:
    if text is None:
        return
    if unknown := [v for v in text.split(",") if v and v != "none" and v not in kinds]:
        raise ValueError(f"{option}: unknown {unknown}; choose from {', '.join(kinds)}")


def run(args: argparse.Namespace) -> int:
    from densehuman.inference.wholebody_cli import is_wholebody_model, run_wholebody

    wholebody = args.model is not None and is_wholebody_model(args.model)
    if args.task == "wholebody" or (args.task == "auto" and wholebody):
        if args.wholebody_model:
            raise ValueError("--wholebody-model is for region tasks (it runs beside the region model); use --model")
        if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
            raise ValueError(f"--min-score {args.min_score}: a person score threshold must be in [0, 1]")
        inputs = collect_inputs(args.inputs)
        if not inputs:
            raise ValueError(f"no images or videos in {', '.join(args.inputs)}")
        return run_wholebody(args, inputs)
    if wholebody:
        raise ValueError(f"{args.model} is a whole-body (BODY_135) model: use --task wholebody, not --task {args.task}")
    if (args.net_height is not None or args.exact_maps) and not args.wholebody_model:
        raise ValueError("--net-height and --exact-maps are for --task wholebody or --wholebody-model")
    if args.min_score is None:
        args.min_score = 0.5
    _check_names(args.vis, VIS_KINDS, "--vis")
    _check_names(args.save, SAVE_KINDS, "--save")
    if not 0.0 <= args.min_score <= 1.0:
        raise ValueError(f"--min-score {args.min_score}: a detection score threshold must be in [0, 1]")
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise ValueError(f"no images or videos in {', '.join(args.inputs)}")
    atlas = None
    if args.texture and "texture" in (args.vis or ""):
        atlas = read_atlas(Path(args.texture))
    from densehuman.inference.predictor import Predictor

    model = _model_or_bundled(args.model)
    predictor = Predictor(model, args.checkpoint, config=args.config, device=args.device, min_score=args.min_score)
    branches = predictor.config.model
    vis, save = choose_outputs(args, branches.densepose.enabled, branches.parsing.enabled)
    out = Path(args.out)
    planned = plan_outputs(inputs, out, vis, save)
    if args.wholebody_model:
        args.wholebody = _wholebody_for_merge(args)
        planned = [
            p
            if p.video
            else dataclasses.replace(
                p, targets=(*p.targets, out / f"{p.stem}_people.json", out / f"{p.stem}_wholebody.png")
            )
            for p in planned
        ]
    # Every output is checked before anything is written.
    finals = [out / "results.json"] if "results" in save else []
    finals += [out / "parsing_results.json"] if "parsing" in save else []
    finals += [out / "images.json"] if finals else []
    if not args.overwrite:
        existing = [t for job in planned for t in job.targets if t.exists()] + [t for t in finals if t.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ValueError(f"{existing[0]} already exists{more}; pass --overwrite to replace outputs")
    return _predict_all(predictor, planned, out, vis, save, atlas, args)


def _predict_all(
    predictor: Any, planned: list[_Planned], out: Path, vis: list[str], save: list[str], atlas: Any, args: Any
) -> int:
    from tqdm import tqdm

    from densehuman import atomic
    from densehuman.data.parsing_classes import DATASETS
    from densehuman.evaluation.parsing_results import ParsingDetection, save_parsing_results
    from densehuman.evaluation.predictions import Detection, save_results
    from densehuman.inference.video import predict_video
    from densehuman.validation import InputError
    from densehuman.validation.images import read_image

    threshold = DATASETS[predictor.config.model.parsing.dataset].score_threshold
    detections: list[Detection] = []
    parsings: list[ParsingDetection] = []
    images_json: list[dict[str, Any]] = []
    skipped: list[str] = []
    people = videos = 0
    for image_id, job in enumerate(tqdm(planned, desc="predict", unit="img", disable=args.quiet), start=1):
        path = job.path
        if job.video:
            try:
                frames, found = predict_video(path, out / job.stem, predictor, vis, atlas, args.overwrite)
            except ValueError as err:
                skipped.append(str(err))
                continue
            people += found
            videos += 1
            print(f"{path}: {frames} frames -> {out / job.stem}_<vis>.mp4")
            continue
        try:
            rgb = read_image(path)
        except (InputError, FileNotFoundError) as err:
            skipped.append(str(err))
            continue
        result = predictor(rgb)
        people += len(result.people)
        write_image_outputs(out, job.stem, rgb, result, vis, save, atlas, args.side_by_side, threshold)
        if getattr(args, "wholebody", None) is not None:
            _write_merged(out, job.stem, rgb, result, args.wholebody(rgb))
        h, w = rgb.shape[:2]
        images_json.append({"id": image_id, "file_name": str(path), "height": h, "width": w})
        detections += result.detections(image_id)
        parsings += result.parsing_detections(image_id)
    for message in skipped:
        print(f"skipped {message}")
    if not images_json and not videos:
        raise ValueError(f"none of the {len(planned)} inputs could be read; nothing was written")
    if images_json:
        if "results" in save:
            save_results(out / "results.json", detections)
        if "parsing" in save:
            save_parsing_results(out / "parsing_results.json", parsings)
        if "results" in save or "parsing" in save:
            atomic.write_json(out / "images.json", images_json, indent=1)
    counts = f"{len(images_json)} images" + (f", {videos} videos" if videos else "")
    print(f"{counts}, {people} people -> {out}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0
