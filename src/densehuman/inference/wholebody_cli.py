"""``densehuman predict --task wholebody``: BODY_135 keypoints for images, folders and videos.

Per image ``<name>_wholebody.png`` (the skeleton) and ``<name>_keypoints.json`` (OpenPose JSON); per video
``<name>_wholebody.mp4`` and a folder ``<name>_json/`` with one OpenPose JSON per frame, named as OpenPose's
``--write_json`` names them (``<name>_000000000000_keypoints.json``, ...); for all images together
``wholebody_results.json`` (COCO-WholeBody results) and ``images.json`` (ids as the DensePose results: the input's
position, from 1). Every output is checked before anything is written; nothing is replaced without ``--overwrite``.

This module does not import PyTorch until a model is run, so that the command line's checks stay quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

WHOLEBODY_PRESET_NAMES = ("body135", "body135_cpu")  # densehuman.inference.wholebody.WHOLEBODY_PRESETS
WHOLEBODY_FORMAT = "densehuman-wholebody-1"
MAX_HEADER = 100 << 20  # bytes of safetensors header read to find the format


def safetensors_format(path: Path) -> str | None:
    """The ``format`` in a safetensors file's metadata (read from its JSON header without loading it); None when the
    file is not safetensors or has none."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    value = meta.get("format") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def is_wholebody_model(model: str) -> bool:
    """True for a whole-body preset name, a ``.caffemodel``, a densehuman whole-body checkpoint or ONNX export, or a
    training run folder whose ``last_checkpoint`` is one."""
    path = Path(model)
    marker = path / "last_checkpoint"
    if path.is_dir() and marker.is_file():
        try:
            path = path / marker.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return False
    if path.is_file():
        if path.suffix.lower() == ".onnx":
            from densehuman.export.wholebody_onnx import is_wholebody_onnx

            return is_wholebody_onnx(path)
        return path.suffix.lower() == ".caffemodel" or safetensors_format(path) == WHOLEBODY_FORMAT
    return not path.exists() and model in WHOLEBODY_PRESET_NAMES


def _refuse_region_options(args: argparse.Namespace) -> None:
    given = [
        option
        for option, value in (
            ("--checkpoint", args.checkpoint),
            ("--config", args.config),
            ("--vis", args.vis),
            ("--save", args.save),
            ("--texture", args.texture),
        )
        if value is not None
    ]
    if given:
        verb = "is" if len(given) == 1 else "are"
        raise ValueError(f"--task wholebody: {', '.join(given)} {verb} for the region models (DensePose / parsing)")


def video_json_name(stem: str, frame: int) -> str:
    """OpenPose's ``--write_json`` file name of a video frame."""
    return f"{stem}_{frame:012d}_keypoints.json"


def run_wholebody(args: argparse.Namespace, inputs: list[Path]) -> int:
    """The ``--task wholebody`` path of ``densehuman predict`` (module docstring)."""
    from densehuman.inference.cli import plan_outputs

    if not args.model:
        from densehuman.demo import bundled_wholebody_model

        bundled = bundled_wholebody_model()
        if bundled is None:
            raise ValueError(
                "no --model given and this install has no bundled whole-body model: pass --model with a whole-body "
                "checkpoint, a BODY_135 .caffemodel or a preset"
            )
        print(
            f"using the bundled whole-body model {bundled.name} (trained on synthetic people only; --model for another)"
        )
        args.model = str(bundled)
    if not is_wholebody_model(args.model):
        raise ValueError(
            f"--task wholebody: {args.model} is not a whole-body model (a checkpoint of format {WHOLEBODY_FORMAT}, "
            f"a BODY_135 .caffemodel or a preset: {', '.join(WHOLEBODY_PRESET_NAMES)}); region models (DensePose / "
            "parsing) run with --task densepose, parsing or all"
        )
    _refuse_region_options(args)
    if args.net_height is not None:
        from densehuman.inference.wholebody_preprocess import check_net_height

        try:
            check_net_height(args.net_height)
        except ValueError as err:
            raise ValueError(f"--net-height {args.net_height}: {err}") from None
    min_score = 0.0 if args.min_score is None else float(args.min_score)
    out = Path(args.out)
    planned = []
    for job in plan_outputs(inputs, out, ["wholebody"], []):
        extra = out / (f"{job.stem}_json" if job.video else f"{job.stem}_keypoints.json")
        planned.append(dataclasses.replace(job, targets=(*job.targets, extra)))
    finals = [out / "wholebody_results.json", out / "images.json"] if any(not j.video for j in planned) else []
    if not args.overwrite:
        existing = [t for job in planned for t in job.targets if t.exists()] + [t for t in finals if t.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ValueError(f"{existing[0]} already exists{more}; pass --overwrite to replace outputs")
    from densehuman.inference.wholebody import WholeBodyPredictor

    predictor = WholeBodyPredictor(
        args.model, net_height=args.net_height, device=args.device, exact_maps=args.exact_maps
    )
    return _predict_all(predictor, planned, out, min_score, args)


def _keep(result: Any, min_score: float) -> Any:
    if min_score <= 0:
        return result
    return dataclasses.replace(result, people=[p for p in result.people if p.score >= min_score])


def _predict_all(predictor: Any, planned: list[Any], out: Path, min_score: float, args: Any) -> int:
    from tqdm import tqdm

    from densehuman import atomic
    from densehuman.inference.wholebody_outputs import (
        coco_wholebody_results,
        write_coco_wholebody_results,
        write_openpose_json,
    )
    from densehuman.validation import InputError
    from densehuman.validation.images import read_image
    from densehuman.visualization.densepose import side_by_side
    from densehuman.visualization.wholebody import draw_wholebody

    results: list[dict[str, Any]] = []
    images_json: list[dict[str, Any]] = []
    skipped: list[str] = []
    people = videos = 0
    for image_id, job in enumerate(tqdm(planned, desc="predict", unit="img", disable=args.quiet), start=1):
        if job.video:
            try:
                frames, found = _predict_video(predictor, job, out, min_score, args)
            except ValueError as err:  # InputError included
                skipped.append(str(err))
                continue
            people += found
            videos += 1
            print(f"{job.path}: {frames} frames -> {out / job.stem}_wholebody.mp4, {out / job.stem}_json/")
            continue
        try:
            rgb = read_image(job.path)
        except (InputError, FileNotFoundError) as err:
            skipped.append(str(err))
            continue
        result = _keep(predictor(rgb), min_score)
        people += len(result.people)
        picture = draw_wholebody(rgb, result.people)
        if args.side_by_side:
            picture = side_by_side(rgb, picture, gap=4)
        atomic.write_image(out / f"{job.stem}_wholebody.png", picture[..., ::-1])
        write_openpose_json(out / f"{job.stem}_keypoints.json", result)
        h, w = rgb.shape[:2]
        images_json.append({"id": image_id, "file_name": str(job.path), "height": h, "width": w})
        results += coco_wholebody_results(result, image_id)
    for message in skipped:
        print(f"skipped {message}")
    if not images_json and not videos:
        raise ValueError(f"none of the {len(planned)} inputs could be read; nothing was written")
    if images_json:
        write_coco_wholebody_results(out / "wholebody_results.json", results)
        atomic.write_json(out / "images.json", images_json, indent=1)
    counts = f"{len(images_json)} images" + (f", {videos} videos" if videos else "")
    print(f"{counts}, {people} people -> {out}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0


def _predict_video(predictor: Any, job: Any, out: Path, min_score: float, args: Any) -> tuple[int, int]:
    """Every frame: one OpenPose JSON per frame in ``<stem>_json/`` and the skeleton video (written to a temporary
    name, renamed when complete). With ``--overwrite``, frame files of an earlier, longer run are removed."""
    import os

    import cv2
    import numpy as np

    from densehuman.inference.wholebody_outputs import write_openpose_json
    from densehuman.validation.images import open_video
    from densehuman.visualization.densepose import side_by_side
    from densehuman.visualization.wholebody import draw_wholebody

    capture, info = open_video(job.path)
    target = out / f"{job.stem}_wholebody.mp4"
    folder = out / f"{job.stem}_json"
    tmp = target.with_name(f".{target.stem}.tmp.mp4")
    writer: Any = None
    frames = people = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            result = _keep(predictor(rgb), min_score)
            people += len(result.people)
            write_openpose_json(folder / video_json_name(job.stem, frames), result)
            picture = draw_wholebody(rgb, result.people)
            if args.side_by_side:
                picture = side_by_side(rgb, picture, gap=4)
            picture = np.ascontiguousarray(picture[..., ::-1])
            if writer is None:
                h, w = picture.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), info.fps, (w, h))
                if not writer.isOpened():
                    raise ValueError(f"{tmp}: OpenCV cannot write an mp4 video here")
            writer.write(picture)
            frames += 1
        if frames == 0:
            raise ValueError(f"{job.path}: no frame could be read")
        writer.release()
        os.replace(tmp, target)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    stale = frames
    while (folder / video_json_name(job.stem, stale)).exists():
        (folder / video_json_name(job.stem, stale)).unlink()
        stale += 1
    return frames, people
