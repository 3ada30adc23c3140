"""``densehuman predict``: dense pose for images and folders, as pictures and as data."""

from __future__ import annotations

import argparse
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
SAVE_KINDS = ("results", "iuv", "npz", "texture")
VIS_KINDS = ("segm", "u", "v", "iuv", "contour", "bbox", "texture")


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = "run a DensePose model on images, folders or videos: visualizations, IUV/INDS PNGs, results JSON, arrays"
    p = sub.add_parser("predict", help=text, description=text)
    p.add_argument("inputs", nargs="+", help="images, videos, folders (searched recursively) or glob patterns")
    p.add_argument(
        "--model",
        help="a run folder, a densehuman checkpoint, a preset name, or a detectron2 DensePose checkpoint (.pkl/.pth); "
        "default: the bundled model (trained on synthetic people only)",
    )
    p.add_argument("--checkpoint", help="weights for a preset given as --model")
    p.add_argument(
        "--config",
        help="for a detectron2 checkpoint: its detectron2 config YAML or model-zoo name (default: config.yaml beside "
        "it, the zoo file name, or what its tensors show)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--min-score", type=float, default=0.5, help="keep people scoring at least this (0.5)")
    p.add_argument("--vis", default="segm,contour,bbox", help="comma list of: segm,u,v,iuv,contour,bbox,texture")
    p.add_argument("--save", default="results,iuv", help=f"comma list of: {','.join(SAVE_KINDS)} (or 'none')")
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
        targets = [out / f"{stem}_{v}.png" for v in vis]
        if "iuv" in save:
            targets += [out / f"{stem}_IUV.png", out / f"{stem}_INDS.png"]
        if "npz" in save:
            targets.append(out / f"{stem}.npz")
        if "texture" in save:
            targets.append(out / f"{stem}_atlas.png")
        planned.append(_Planned(path, stem, False, tuple(targets)))
    return planned


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


def run(args: argparse.Namespace) -> int:
    vis = [v for v in args.vis.split(",") if v and v != "none"]
    unknown = [v for v in vis if v not in VIS_KINDS]
    if unknown:
        raise ValueError(f"--vis: unknown {unknown}; choose from {', '.join(VIS_KINDS)}")
    save = [s for s in args.save.split(",") if s and s != "none"]
    if bad := [s for s in save if s not in SAVE_KINDS]:
        raise ValueError(f"--save: unknown {bad}; choose from {', '.join(SAVE_KINDS)}")
    if not 0.0 <= args.min_score <= 1.0:
        raise ValueError(f"--min-score {args.min_score}: a detection score threshold must be in [0, 1]")
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise ValueError(f"no images or videos in {', '.join(args.inputs)}")
    out = Path(args.out)
    planned = plan_outputs(inputs, out, vis, save)
    # Every output is checked before anything is written (or the model is even loaded).
    finals = [out / "results.json", out / "images.json"] if "results" in save else []
    if not args.overwrite:
        existing = [t for job in planned for t in job.targets if t.exists()] + [t for t in finals if t.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ValueError(f"{existing[0]} already exists{more}; pass --overwrite to replace outputs")
    atlas = None
    if "texture" in vis and args.texture:
        atlas = read_atlas(Path(args.texture))
    from densehuman.inference.predictor import Predictor

    model = _model_or_bundled(args.model)
    predictor = Predictor(model, args.checkpoint, config=args.config, device=args.device, min_score=args.min_score)
    return _predict_all(predictor, planned, out, vis, save, atlas, args)


def _predict_all(
    predictor: Any, planned: list[_Planned], out: Path, vis: list[str], save: list[str], atlas: Any, args: Any
) -> int:
    import numpy as np
    from tqdm import tqdm

    from densehuman import atomic
    from densehuman.data.dense_png import encode_iuv
    from densehuman.evaluation.predictions import Detection, save_results
    from densehuman.validation import InputError
    from densehuman.validation.images import read_image

    detections: list[Detection] = []
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
        maps = result.dense_maps()
        charts, u, v, inds = maps.I, maps.U, maps.V, maps.instance
        for name in vis:
            picture = render(name, rgb, maps, atlas)
            if args.side_by_side:
                from densehuman.visualization.densepose import side_by_side

                picture = side_by_side(rgb, picture, gap=4)
            atomic.write_image(out / f"{job.stem}_{name}.png", np.ascontiguousarray(picture[..., ::-1]))
        if "iuv" in save:
            atomic.write_image(out / f"{job.stem}_IUV.png", encode_iuv(charts, u, v))
            atomic.write_image(out / f"{job.stem}_INDS.png", inds)
        if "npz" in save:
            import io

            buf = io.BytesIO()
            arrays: dict[str, Any] = {"boxes_xyxy": maps.boxes, "scores": maps.scores}
            for k, person in enumerate(result.people):
                arrays[f"person{k}_labels"] = person.chart.labels.astype(np.uint8)
                arrays[f"person{k}_uv"] = person.chart.uv
            np.savez_compressed(buf, allow_pickle=False, **arrays)
            atomic.write_bytes(out / f"{job.stem}.npz", buf.getvalue())
        if "texture" in save:
            from densehuman.visualization.densepose import extract_texture

            # The visible surface of everybody in the image unwrapped into the 24-tile atlas (transparent where unseen).
            texture, filled = extract_texture(rgb, charts, u, v)
            rgba = np.dstack([texture[..., ::-1], (filled * 255).astype(np.uint8)])
            atomic.write_image(out / f"{job.stem}_atlas.png", rgba)
        h, w = rgb.shape[:2]
        images_json.append({"id": image_id, "file_name": str(path), "height": h, "width": w})
        detections += result.detections(image_id)
    for message in skipped:
        print(f"skipped {message}")
    if not images_json and not videos:
        raise ValueError(f"none of the {len(planned)} inputs could be read; nothing was written")
    if "results" in save and images_json:
        save_results(out / "results.json", detections)
        atomic.write_json(out / "images.json", images_json, indent=1)
    counts = f"{len(images_json)} images" + (f", {videos} videos" if videos else "")
    print(f"{counts}, {people} people -> {out}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0


def render(name: str, image: Any, maps: Any, atlas: Any) -> Any:
    """One named visualization of an image's pasted results (RGB in, RGB out, the image's size)."""
    from densehuman.visualization import densepose as vis

    if name == "texture" and atlas is not None:
        return vis.texture_transfer(image, maps.I, maps.U, maps.V, atlas)
    return vis.VISUALIZATIONS[name](image, maps)


def predict_video(
    path: Path, prefix: Path, predictor: Any, vis: list[str], atlas: Any, overwrite: bool
) -> tuple[int, int]:
    """Every frame through the predictor; one output video per visualization at the input's frame rate.

    Videos are written to a temporary name and renamed when complete. Returns (frames, people found)."""
    import os

    import cv2
    import numpy as np

    from densehuman.validation.images import open_video

    capture, info = open_video(path)
    fps = info.fps
    targets = {name: Path(f"{prefix}_{name}.mp4") for name in vis}
    if not overwrite and (existing := [t for t in targets.values() if t.exists()]):
        capture.release()
        raise ValueError(f"{existing[0]} already exists (pass --overwrite to replace outputs)")
    writers: dict[str, Any] = {}
    frames = people = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            result = predictor(rgb)
            people += len(result.people)
            maps = result.dense_maps()
            for name in vis:
                picture = np.ascontiguousarray(render(name, rgb, maps, atlas)[..., ::-1])
                if name not in writers:
                    h, w = picture.shape[:2]
                    tmp = targets[name].with_name(f".{targets[name].stem}.tmp.mp4")
                    tmp.parent.mkdir(parents=True, exist_ok=True)  # made at the first frame: nothing before that
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
                    writers[name] = (writer, tmp)
                    if not writer.isOpened():
                        raise ValueError(f"{tmp}: OpenCV cannot write an mp4 video here")
                writers[name][0].write(picture)
            frames += 1
        if frames == 0:
            raise ValueError(f"{path}: no frame could be read")
        for name, (writer, tmp) in writers.items():
            writer.release()
            os.replace(tmp, targets[name])
    finally:
        capture.release()
        for writer, tmp in writers.values():  # after an error or an interruption: no half-written video is left
            writer.release()
            tmp.unlink(missing_ok=True)
    return frames, people
