"""What ``densehuman predict`` writes for one image, by task: pictures, DensePose files, parsing maps.

DensePose (``--save``): ``results`` (the official results format, with ``images.json``), ``iuv`` (the original
repository's ``*_IUV.png`` / ``*_INDS.png``), ``npz`` (per-person arrays), ``texture`` (the visible surface unwrapped
into the 24-tile atlas). Parsing: ``parsing`` (``parsing_results.json`` with ``images.json``, and the CIHP-style
``parsing_predict/<name>.png`` global part map and ``parsing_instance/<name>.png`` instance map, built as Parsing
R-CNN's ``parsing_png`` with the dataset's score threshold).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from densehuman import atomic

DENSEPOSE_VIS = ("segm", "u", "v", "iuv", "contour", "texture")
PARSING_VIS = ("parsing", "instances")
COMMON_VIS = ("bbox",)
VIS_KINDS = DENSEPOSE_VIS + PARSING_VIS + COMMON_VIS
DENSEPOSE_SAVE = ("results", "iuv", "npz", "texture")
PARSING_SAVE = ("parsing",)
SAVE_KINDS = DENSEPOSE_SAVE + PARSING_SAVE


def image_targets(out: Path, stem: str, vis: list[str], save: list[str]) -> list[Path]:
    """Every file one image writes (the results files, shared by all images, are not among them)."""
    targets = [out / f"{stem}_{v}.png" for v in vis]
    if "iuv" in save:
        targets += [out / f"{stem}_IUV.png", out / f"{stem}_INDS.png"]
    if "npz" in save:
        targets.append(out / f"{stem}.npz")
    if "texture" in save:
        targets.append(out / f"{stem}_atlas.png")
    if "parsing" in save:
        targets += [out / "parsing_predict" / f"{stem}.png", out / "parsing_instance" / f"{stem}.png"]
    return targets


def render(name: str, image: np.ndarray, result: Any, atlas: np.ndarray | None) -> np.ndarray:
    """One named visualization of an image's results (``ImageResult``); RGB in, RGB out, the image's size."""
    from densehuman.visualization import densepose as dp
    from densehuman.visualization import parsing as pv

    if name in PARSING_VIS:
        parts, instances = result.parsing_maps()
        return pv.parsing_image(image, parts) if name == "parsing" else pv.instance_image(image, instances)
    maps = result.dense_maps()
    if name == "texture" and atlas is not None:
        return dp.texture_transfer(image, maps.I, maps.U, maps.V, atlas)
    return dp.VISUALIZATIONS[name](image, maps)


def write_image_outputs(
    out: Path,
    stem: str,
    rgb: np.ndarray,
    result: Any,
    vis: list[str],
    save: list[str],
    atlas: np.ndarray | None,
    side_by_side: bool,
    parsing_threshold: float,
) -> None:
    """The pictures and per-image data files of one image (each written atomically)."""
    from densehuman.data.dense_png import encode_iuv
    from densehuman.visualization.densepose import extract_texture
    from densehuman.visualization.densepose import side_by_side as beside

    for name in vis:
        picture = render(name, rgb, result, atlas)
        if side_by_side:
            picture = beside(rgb, picture, gap=4)
        atomic.write_image(out / f"{stem}_{name}.png", np.ascontiguousarray(picture[..., ::-1]))
    if any(kind in save for kind in ("iuv", "npz", "texture")):
        maps = result.dense_maps()
        if "iuv" in save:
            atomic.write_image(out / f"{stem}_IUV.png", encode_iuv(maps.I, maps.U, maps.V))
            atomic.write_image(out / f"{stem}_INDS.png", maps.instance)
        if "npz" in save:
            buf = io.BytesIO()
            arrays: dict[str, Any] = {"boxes_xyxy": maps.boxes, "scores": maps.scores}
            for k, person in enumerate(result.people):
                if person.chart is not None:
                    arrays[f"person{k}_labels"] = person.chart.labels.astype(np.uint8)
                    arrays[f"person{k}_uv"] = person.chart.uv
                if person.parsing is not None:
                    arrays[f"person{k}_parsing"] = person.parsing
            np.savez_compressed(buf, allow_pickle=False, **arrays)
            atomic.write_bytes(out / f"{stem}.npz", buf.getvalue())
        if "texture" in save:
            # The visible surface of everybody in the image unwrapped into the atlas (transparent where unseen).
            texture, filled = extract_texture(rgb, maps.I, maps.U, maps.V)
            rgba = np.dstack([texture[..., ::-1], (filled * 255).astype(np.uint8)])
            atomic.write_image(out / f"{stem}_atlas.png", rgba)
    if "parsing" in save:
        parts, instances = result.parsing_maps(parsing_threshold)
        atomic.write_image(out / "parsing_predict" / f"{stem}.png", parts)
        atomic.write_image(out / "parsing_instance" / f"{stem}.png", instances)
