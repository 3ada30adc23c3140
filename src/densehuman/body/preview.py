"""Pictures of the body surface for a person to judge: charts, U, V and a checkerboard, front and back, plus the
24 UV layouts."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from densehuman import atomic
from densehuman.body.charts import CHART_NAMES, NUM_CHARTS
from densehuman.body.surface import BodySurface
from densehuman.render.rasterize import Fragments, rasterize


def chart_palette() -> np.ndarray:
    """(25, 3) uint8 colours, background white, the 24 charts from matplotlib's tab20 + tab20b."""
    colours = [matplotlib.colormaps["tab20"](i)[:3] for i in range(20)]
    colours += [matplotlib.colormaps["tab20b"](i)[:3] for i in (0, 4, 8, 12)]
    return (np.array([(1.0, 1.0, 1.0), *colours]) * 255).astype(np.uint8)


def _render_view(surface: BodySurface, back: bool, height: int) -> Fragments:
    """Orthographic view of the rest body from the front (-Y) or the back (+Y)."""
    verts = surface.vertices.astype(np.float64)
    used = np.unique(surface.faces)
    lo, hi = verts[used].min(axis=0), verts[used].max(axis=0)
    scale = 0.94 * height / (hi[2] - lo[2])
    width = int(np.ceil((hi[0] - lo[0]) * scale / 0.94))
    sign = -1.0 if back else 1.0
    x = sign * (verts[:, 0] - 0.5 * (lo[0] + hi[0])) * scale + width / 2
    y = (hi[2] - verts[:, 2]) * scale + 0.03 * height
    depth = sign * verts[:, 1] + 10.0
    return rasterize(np.stack([x, y], axis=1), depth, surface.faces, (height, width))


def _pixel_uv(surface: BodySurface, frags: Fragments) -> tuple[np.ndarray, np.ndarray]:
    face = np.maximum(frags.face, 0)
    uv = np.einsum("hwk,hwkd->hwd", frags.bary, surface.corner_uv[face])
    return surface.face_chart[face] * frags.mask, uv


def _shade(image: np.ndarray, frags: Fragments) -> np.ndarray:
    return np.where(frags.mask[..., None], image, 255).astype(np.uint8)


def checkerboard(u: np.ndarray, v: np.ndarray, squares: int = 8) -> np.ndarray:
    """(..., 3) uint8 checkerboard with a colour ramp along U so orientation is visible."""
    on = ((np.floor(u * squares) + np.floor(v * squares)) % 2).astype(bool)
    ramp = (np.stack([0.3 + 0.7 * u, 0.25 + 0.5 * v, 1.0 - 0.7 * u], axis=-1) * 255).astype(np.uint8)
    return np.where(on[..., None], ramp, (ramp * 0.35).astype(np.uint8))


def render_previews(surface: BodySurface, height: int = 800) -> dict[str, Image.Image]:
    """The preview pictures by file name."""
    palette = chart_palette()
    views = [_render_view(surface, back, height) for back in (False, True)]
    cmap = matplotlib.colormaps["viridis"]
    pictures: dict[str, list[np.ndarray]] = {"charts": [], "u": [], "v": [], "checkerboard": []}
    for frags in views:
        chart, uv = _pixel_uv(surface, frags)
        pictures["charts"].append(_shade(palette[chart], frags))
        pictures["u"].append(_shade((cmap(uv[..., 0])[..., :3] * 255).astype(np.uint8), frags))
        pictures["v"].append(_shade((cmap(uv[..., 1])[..., :3] * 255).astype(np.uint8), frags))
        pictures["checkerboard"].append(_shade(checkerboard(uv[..., 0], uv[..., 1]), frags))
    out = {
        f"body_{name}_front_back.png": Image.fromarray(np.concatenate(imgs, axis=1)) for name, imgs in pictures.items()
    }
    out["uv_layouts.png"] = render_uv_layouts(surface)
    return out


def render_uv_layouts(surface: BodySurface, cell: int = 200) -> Image.Image:
    """A 6 x 4 grid: each chart's triangles in [0, 1]^2 (U right, V down), filled with the checkerboard."""
    cols, margin = 6, 18
    rows = (NUM_CHARTS + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (cell + margin), rows * (cell + 2 * margin)), "white")
    grid = (np.arange(cell) + 0.5) / cell
    vv, uu = np.meshgrid(grid, grid, indexing="ij")
    for c in range(1, NUM_CHARTS + 1):
        members = np.flatnonzero(surface.face_chart == c)
        tri = surface.corner_uv[members].reshape(-1, 2).astype(np.float64) * cell
        frags = rasterize(tri, np.ones(tri.shape[0]), np.arange(tri.shape[0]).reshape(-1, 3), (cell, cell))
        tile = np.where(frags.mask[..., None], checkerboard(uu, vv), 235).astype(np.uint8)
        x0, y0 = ((c - 1) % cols) * (cell + margin), ((c - 1) // cols) * (cell + 2 * margin) + margin
        canvas.paste(Image.fromarray(tile), (x0, y0))
        ImageDraw.Draw(canvas).text((x0, y0 - margin + 3), f"{c} {CHART_NAMES[c]}", fill="black")
    return canvas


def write_previews(surface: BodySurface, out_dir: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write the preview PNGs into ``out_dir``; refuses to replace existing files unless ``overwrite``."""
    out = Path(out_dir)
    pictures = render_previews(surface)
    targets = [out / name for name in pictures]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists (pass --overwrite to replace the preview pictures)")
    out.mkdir(parents=True, exist_ok=True)
    for path, image in zip(targets, pictures.values(), strict=True):
        with atomic.replacing(path) as handle:
            image.save(handle, format="PNG")
    return targets
