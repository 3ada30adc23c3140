"""A vectorized z-buffer triangle rasterizer in NumPy: per pixel, the nearest face and its barycentric weights.

Labels (chart, U, V, instance) are read off the face and barycentric buffers, so they are never blended across
edges; anti-aliasing, where wanted, is done on colour images only by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterization result of an (H, W) image."""

    face: np.ndarray  # (H, W) int64, index of the visible face, -1 for background
    bary: np.ndarray  # (H, W, 3) float32 barycentric weights of the pixel centre in that face
    depth: np.ndarray  # (H, W) float32, interpolated depth (inf for background)

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def rasterize(
    vertices_px: np.ndarray,
    depth: np.ndarray,
    faces: np.ndarray,
    size: tuple[int, int],
    cull_backfaces: bool = False,
    max_fragments: int = 40_000_000,
) -> Fragments:
    """Rasterize triangles given in pixel coordinates.

    Args:
        vertices_px: (N, 2) x, y in pixels; pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5.
        depth: (N,) distance along the viewing direction; smaller is nearer.
        faces: (F, 3) vertex indices.
        size: (H, W) of the output.
        cull_backfaces: drop faces that turn away from the camera. With y pointing down the image, an outward-wound
            face that faces the camera has a negative ``signed_area``.
        max_fragments: refuse to allocate more candidate pixels than this (a guard against absurd inputs).
    """
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    tri = vertices_px[faces].astype(np.float64)  # (F, 3, 2)
    tri_depth = depth[faces].astype(np.float64)  # (F, 3)
    area = signed_area(tri)
    keep = np.abs(area) > 1e-12
    keep &= np.isfinite(tri).all(axis=(1, 2)) & np.isfinite(tri_depth).all(axis=1) & (tri_depth > 0).all(axis=1)
    if cull_backfaces:
        keep &= area < 0
    # Pixel-centre bounding boxes, clipped to the image.
    x0 = np.clip(np.ceil(tri[..., 0].min(axis=1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(axis=1) - 0.5) + 1, 0, width).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(axis=1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(axis=1) - 0.5) + 1, 0, height).astype(np.int64)
    bw, bh = x1 - x0, y1 - y0
    keep &= (bw > 0) & (bh > 0)
    ids = np.flatnonzero(keep)
    counts = (bw * bh)[ids]
    total = int(counts.sum())
    face_buf = np.full((height, width), -1, dtype=np.int64)
    bary_buf = np.zeros((height, width, 3), dtype=np.float32)
    depth_buf = np.full((height, width), np.inf, dtype=np.float32)
    if total == 0:
        return Fragments(face_buf, bary_buf, depth_buf)
    if total > max_fragments:
        raise ValueError(f"{total} candidate fragments exceed max_fragments={max_fragments}; triangles too large?")
    # Enumerate every candidate pixel of every face's box.
    owner = np.repeat(ids, counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    px = x0[owner] + local % bw[owner]
    py = y0[owner] + local // bw[owner]
    cx, cy = px + 0.5, py + 0.5
    a, b, c = tri[owner, 0], tri[owner, 1], tri[owner, 2]
    inv_area = 0.5 / area[owner]
    w0 = ((b[:, 0] - cx) * (c[:, 1] - cy) - (c[:, 0] - cx) * (b[:, 1] - cy)) * inv_area
    w1 = ((c[:, 0] - cx) * (a[:, 1] - cy) - (a[:, 0] - cx) * (c[:, 1] - cy)) * inv_area
    w2 = 1.0 - w0 - w1
    inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    owner, px, py, w0, w1, w2 = owner[inside], px[inside], py[inside], w0[inside], w1[inside], w2[inside]
    # Perspective-correct interpolation would need 1/z; for the small triangles of a body mesh linear is exact
    # enough for the depth test, and the barycentric weights returned are the screen-space ones.
    z = w0 * tri_depth[owner, 0] + w1 * tri_depth[owner, 1] + w2 * tri_depth[owner, 2]
    pixel = py * width + px
    order = np.lexsort((z, pixel))
    pixel_sorted = pixel[order]
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = pixel_sorted[1:] != pixel_sorted[:-1]
    win = order[first]
    flat = pixel[win]
    face_buf.reshape(-1)[flat] = owner[win]
    bary_buf.reshape(-1, 3)[flat] = np.stack([w0[win], w1[win], w2[win]], axis=1)
    depth_buf.reshape(-1)[flat] = z[win]
    return Fragments(face_buf, bary_buf, depth_buf)


def signed_area(tri: np.ndarray) -> np.ndarray:
    """Signed area of (..., 3, 2) triangles; positive when counter-clockwise in a y-up frame."""
    return 0.5 * (
        (tri[..., 1, 0] - tri[..., 0, 0]) * (tri[..., 2, 1] - tri[..., 0, 1])
        - (tri[..., 2, 0] - tri[..., 0, 0]) * (tri[..., 1, 1] - tri[..., 0, 1])
    )
