# ruff: noqa: E741  (I, U, V are the DensePose names of the chart and coordinate maps)
"""Visualizations of full-image dense pose maps (numpy + OpenCV, no matplotlib at call time).

Conventions:

- ``image``: (H, W, 3) uint8 RGB. Every function returns a new (H, W, 3) uint8 RGB image (``side_by_side`` and
  ``extract_texture`` excepted) and never modifies its inputs.
- ``I``: (H, W) integer chart index 0..24, 0 = background. ``U``, ``V``: (H, W) float in [0, 1] (values outside are
  clipped), meaningful where ``I > 0``.
- Texture atlas (the original DensePose texture-transfer notebook's tiling as laid out for this project):
  ``(4 t, 6 t, 3)`` uint8 RGB, t = 200 by default (1200 wide x 800 high); the tile of chart i (1..24) is at tile row
  ``(i - 1) // 6``, tile column ``(i - 1) % 6``. Inside a tile, with ``Uq, Vq = uint8(clip(255 U)), uint8(clip(255 V))``
  (truncation, as detectron2 quantizes), the texel is row ``(255 - Vq) * (t - 1) // 255`` (V = 1 at the top), column
  ``Uq * (t - 1) // 255`` -- the notebook's ``tex[(255 - V) * 199 / 255, U * 199 / 255]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from densehuman.body.preview import chart_palette

NUM_CHARTS = 24
ATLAS_ROWS, ATLAS_COLS = 4, 6
U_LINE_COLOUR = (255, 64, 64)  # RGB, iso-U lines
V_LINE_COLOUR = (64, 160, 255)  # RGB, iso-V lines


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    return image


def _check_maps(
    image: np.ndarray, I: np.ndarray, U: np.ndarray | None = None, V: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Validate image and maps; returns (image, I as int64, U, V as float32 clipped to [0, 1])."""
    image = _check_image(image)
    I = np.asarray(I)
    if I.shape != image.shape[:2]:
        raise ValueError(f"I must have the image's (H, W) = {image.shape[:2]}, got {I.shape}")
    if not np.issubdtype(I.dtype, np.integer):
        raise ValueError(f"I must be integers, got dtype {I.dtype}")
    if I.size and (I.min() < 0 or I.max() > NUM_CHARTS):
        raise ValueError(f"I must be in 0..{NUM_CHARTS}, got {int(I.min())}..{int(I.max())}")
    out: list[np.ndarray] = [image, I.astype(np.int64)]
    for name, coord in (("U", U), ("V", V)):
        if coord is None:
            continue
        coord = np.asarray(coord)
        if coord.shape != I.shape:
            raise ValueError(f"{name} must have the image's (H, W) = {I.shape}, got {coord.shape}")
        out.append(np.clip(np.nan_to_num(coord.astype(np.float32)), 0.0, 1.0))
    return tuple(out)


def _blend(image: np.ndarray, mask: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """``image`` with ``mask`` pixels replaced by ``(1 - alpha) image + alpha colours`` (colours: (n, 3) per pixel)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = image.copy()
    mixed = (1.0 - alpha) * image[mask].astype(np.float32) + alpha * colours.astype(np.float32)
    out[mask] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def _quantize(coord: np.ndarray) -> np.ndarray:
    """detectron2's quantization of a [0, 1] coordinate: truncate 255 x to uint8 (as int64)."""
    return np.clip(coord * np.float32(255.0), 0.0, 255.0).astype(np.uint8).astype(np.int64)


def chart_segmentation(image: np.ndarray, I: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The 24 charts coloured with ``chart_palette()``, blended with weight ``alpha`` over person pixels only."""
    image, I = _check_maps(image, I)
    mask = I > 0
    return _blend(image, mask, chart_palette()[I[mask]], alpha)


def uv_image(
    image: np.ndarray, I: np.ndarray, U: np.ndarray, V: np.ndarray, which: str = "u", alpha: float = 0.7
) -> np.ndarray:
    """U (``which="u"``) or V (``"v"``) through OpenCV's JET colormap (0 blue .. 1 red), blended over person pixels."""
    if which not in ("u", "v"):
        raise ValueError(f"which must be 'u' or 'v', got {which!r}")
    image, I, U, V = _check_maps(image, I, U, V)
    coord = U if which == "u" else V
    mask = I > 0
    if not mask.any():  # OpenCV's colormap refuses an empty array
        return image.copy()
    levels = _quantize(coord[mask]).astype(np.uint8).reshape(-1, 1)
    colours = cv2.applyColorMap(levels, cv2.COLORMAP_JET).reshape(-1, 3)[:, ::-1]  # BGR -> RGB
    return _blend(image, mask, colours, alpha)


def iuv_image(I: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The raw IUV picture, viewable: RGB = (10 I, Uq, Vq) with Uq, Vq = uint8(255 U), uint8(255 V) (truncated) on
    person pixels, black background. The original repository's ``*_IUV.png`` holds (I, Uq, Vq) unscaled; the factor
    10 only brightens the chart channel (``I = R // 10`` recovers it)."""
    I = np.asarray(I)
    _, I, U, V = _check_maps(np.zeros((*I.shape, 3), np.uint8), I, U, V)
    mask = I > 0
    out = np.zeros((*I.shape, 3), np.uint8)
    out[..., 0] = I * 10
    out[..., 1] = _quantize(U)
    out[..., 2] = _quantize(V)
    out[~mask] = 0
    return out


def contour_mask(I: np.ndarray, coord: np.ndarray, levels: int) -> np.ndarray:
    """(H, W) bool: pixels where ``floor(levels * coord)`` changes to the right or downward neighbour *within the same
    chart* (both pixels of the pair have the same I > 0). The left/upper pixel of each pair is marked, so the mask
    lies inside person regions by construction."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    band = np.minimum(np.floor(coord * levels), levels - 1).astype(np.int64)
    marks = np.zeros(I.shape, dtype=bool)
    same = (I[:, 1:] == I[:, :-1]) & (I[:, 1:] > 0)
    marks[:, :-1] |= same & (band[:, 1:] != band[:, :-1])
    same = (I[1:] == I[:-1]) & (I[1:] > 0)
    marks[:-1] |= same & (band[1:] != band[:-1])
    return marks


def contours(
    image: np.ndarray, I: np.ndarray, U: np.ndarray, V: np.ndarray, levels: int = 10, thickness: int = 1
) -> np.ndarray:
    """Iso-lines of U (``U_LINE_COLOUR``) and V (``V_LINE_COLOUR``) at ``k / levels`` inside each chart, drawn
    opaque over the image (detectron2's contour visualizer, without matplotlib). ``thickness > 1`` dilates the lines
    with a square kernel and then clips them to person pixels (I > 0)."""
    image, I, U, V = _check_maps(image, I, U, V)
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    out = image.copy()
    person = I > 0
    kernel = np.ones((thickness, thickness), np.uint8)
    for coord, colour in ((U, U_LINE_COLOUR), (V, V_LINE_COLOUR)):
        marks = contour_mask(I, coord, levels)
        if thickness > 1:
            marks = cv2.dilate(marks.astype(np.uint8), kernel).astype(bool) & person
        out[marks] = colour
    return out


def boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray | None = None,
    colour: tuple[int, int, int] = (0, 255, 0),
    thickness: int = 2,
) -> np.ndarray:
    """Rectangles for (N, 4) xyxy pixel boxes, with the score (two decimals) above each box's top-left corner."""
    image = _check_image(image)
    box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if scores is not None and len(np.asarray(scores).reshape(-1)) != len(box_arr):
        raise ValueError(f"scores must have one entry per box ({len(box_arr)}), got {np.asarray(scores).shape}")
    out = np.ascontiguousarray(image.copy())
    for k, (x0, y0, x1, y1) in enumerate(np.rint(box_arr).astype(int)):
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), colour, thickness)
        if scores is not None:
            text = f"{float(np.asarray(scores).reshape(-1)[k]):.2f}"
            cv2.putText(out, text, (int(x0), max(int(y0) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return out


def check_atlas(atlas: np.ndarray) -> int:
    """The tile size of a uint8 (4 t, 6 t, 3) texture atlas; ``ValueError`` saying what is wrong otherwise."""
    if atlas.dtype != np.uint8:
        raise ValueError(f"atlas must be uint8, got dtype {atlas.dtype}")
    return _atlas_tile(atlas.shape)


def _atlas_tile(atlas_shape: tuple[int, ...]) -> int:
    """Tile size t of a (4 t, 6 t, 3) atlas; ValueError otherwise."""
    if len(atlas_shape) != 3 or atlas_shape[2] != 3:
        raise ValueError(f"atlas must be an (4 t, 6 t, 3) RGB array (t = 200: (800, 1200, 3)), got {atlas_shape}")
    tile = atlas_shape[0] // ATLAS_ROWS
    if tile < 2 or atlas_shape[0] != ATLAS_ROWS * tile or atlas_shape[1] != ATLAS_COLS * tile:
        raise ValueError(
            f"atlas must be (4 t, 6 t, 3): 4 rows x 6 columns of t x t tiles, t >= 2 (t = 200: (800, 1200, 3)), "
            f"got {atlas_shape}"
        )
    return tile


def atlas_coordinates(I: np.ndarray, U: np.ndarray, V: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Atlas (row, column) int64 arrays for charts I > 0 (see the module docstring), same shape as the inputs."""
    chart = np.asarray(I, dtype=np.int64) - 1
    row = (255 - _quantize(np.asarray(V, np.float32))) * (tile - 1) // 255
    col = _quantize(np.asarray(U, np.float32)) * (tile - 1) // 255
    return (chart // ATLAS_COLS) * tile + row, (chart % ATLAS_COLS) * tile + col


def texture_transfer(
    image: np.ndarray, I: np.ndarray, U: np.ndarray, V: np.ndarray, atlas: np.ndarray, alpha: float = 1.0
) -> np.ndarray:
    """Paint the atlas onto every person pixel (I > 0) by the IUV lookup, blended with ``alpha``; background kept."""
    image, I, U, V = _check_maps(image, I, U, V)
    atlas = np.asarray(atlas)
    tile = _atlas_tile(atlas.shape)
    if atlas.dtype != np.uint8:
        raise ValueError(f"atlas must be uint8, got dtype {atlas.dtype}")
    mask = I > 0
    rows, cols = atlas_coordinates(I[mask], U[mask], V[mask], tile)
    return _blend(image, mask, atlas[rows, cols], alpha)


def extract_texture(
    image: np.ndarray, I: np.ndarray, U: np.ndarray, V: np.ndarray, tile: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``texture_transfer``: person pixels scattered into a (4 tile, 6 tile, 3) atlas by the same
    lookup; a texel hit by several pixels gets their rounded mean. Returns (atlas uint8, filled (4 tile, 6 tile)
    bool); unfilled texels are 0."""
    image, I, U, V = _check_maps(image, I, U, V)
    if tile < 2:
        raise ValueError(f"tile must be >= 2, got {tile}")
    height, width = ATLAS_ROWS * tile, ATLAS_COLS * tile
    mask = I > 0
    rows, cols = atlas_coordinates(I[mask], U[mask], V[mask], tile)
    flat = rows * width + cols
    counts = np.bincount(flat, minlength=height * width)
    colours = image[mask].astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=colours[:, c], minlength=height * width) for c in range(3)], axis=1)
    filled = counts > 0
    atlas = np.zeros((height * width, 3), np.uint8)
    atlas[filled] = np.clip(np.rint(sums[filled] / counts[filled, None]), 0, 255).astype(np.uint8)
    return atlas.reshape(height, width, 3), filled.reshape(height, width)


def checker_atlas(tile: int = 200, squares: int = 8) -> np.ndarray:
    """A (4 tile, 6 tile, 3) uint8 test atlas: each tile a checkerboard of its chart's palette colour and white."""
    _atlas_tile((ATLAS_ROWS * tile, ATLAS_COLS * tile, 3))
    yy, xx = np.mgrid[0 : ATLAS_ROWS * tile, 0 : ATLAS_COLS * tile]
    chart = (yy // tile) * ATLAS_COLS + xx // tile + 1
    dark = ((yy % tile) * squares // tile + (xx % tile) * squares // tile) % 2 == 0
    return np.where(dark[..., None], chart_palette()[chart], np.uint8(255)).astype(np.uint8)


def side_by_side(*images: np.ndarray, gap: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 images left to right, each padded at the bottom with black to the tallest height, ``gap``
    black columns between them."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    checked = [_check_image(im) for im in images]
    height = max(im.shape[0] for im in checked)
    parts: list[np.ndarray] = []
    for k, im in enumerate(checked):
        if k and gap > 0:
            parts.append(np.zeros((height, gap, 3), np.uint8))
        parts.append(np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0))))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class DenseMaps:
    """Full-image dense pose result for the CLI: I (H, W) uint8 0..24, U, V (H, W) float32 [0, 1], instance (H, W)
    uint8 (0 background, k + 1 for person k), boxes (N, 4) xyxy pixels, scores (N,)."""

    I: np.ndarray
    U: np.ndarray
    V: np.ndarray
    instance: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray


@cache
def _default_atlas() -> np.ndarray:
    atlas = checker_atlas()
    atlas.flags.writeable = False
    return atlas


Visualization = Callable[[np.ndarray, DenseMaps], np.ndarray]

VISUALIZATIONS: dict[str, Visualization] = {
    "segm": lambda image, m: chart_segmentation(image, m.I),
    "u": lambda image, m: uv_image(image, m.I, m.U, m.V, which="u"),
    "v": lambda image, m: uv_image(image, m.I, m.U, m.V, which="v"),
    "iuv": lambda image, m: iuv_image(m.I, m.U, m.V),
    "contour": lambda image, m: contours(image, m.I, m.U, m.V),
    "bbox": lambda image, m: boxes(image, m.boxes, m.scores),
    "texture": lambda image, m: texture_transfer(image, m.I, m.U, m.V, _default_atlas()),
}
"""CLI names -> ``f(image, maps) -> (H, W, 3) uint8``; ``"texture"`` uses ``checker_atlas()``."""
