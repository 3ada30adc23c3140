"""Geodesic distances on the rest-pose body: a table over a well-spread vertex subset, like DensePose's
``Pdist_matrix`` over the subdivided SMPL vertices, computed with the heat method.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import potpourri3d as pp3d


def farthest_point_subset(vertices: np.ndarray, candidates: np.ndarray, count: int, seed_vertex: int) -> np.ndarray:
    """``count`` vertices out of ``candidates`` spread evenly over the body by farthest-point sampling."""
    if count > candidates.size:
        raise ValueError(f"asked for {count} subset vertices but the mesh has {candidates.size}")
    points = vertices[candidates]
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = int(np.searchsorted(candidates, seed_vertex).clip(max=candidates.size - 1))
    nearest = np.linalg.norm(points - points[chosen[0]], axis=1)
    for k in range(1, count):
        chosen[k] = int(nearest.argmax())
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[k]], axis=1))
    return np.sort(candidates[chosen])


def subset_distance_table(
    vertices: np.ndarray, faces: np.ndarray, subset: np.ndarray, wrap: type | None = None
) -> np.ndarray:
    """Condensed (n (n - 1) / 2,) float32 geodesic distances between ``subset`` vertices, in metres.

    Entry k = i (i - 1) / 2 + j holds the distance between subset vertices i > j (the strict lower triangle row by
    row, the layout DensePose's evaluation reads). Each row comes from a heat-method solve on the whole mesh; the
    table is symmetrized. ``wrap`` is an optional progress wrapper (e.g. ``tqdm``) around the source loop.
    """
    # The solver wants every vertex used by a face; vertices of left-out parts (eyes, tongue) are dropped here.
    used, local_faces = np.unique(faces, return_inverse=True)
    local = np.full(vertices.shape[0], -1, dtype=np.int64)
    local[used] = np.arange(used.size)
    if (local[subset] < 0).any():
        raise ValueError("subset vertices must lie on the mesh's faces")
    solver = pp3d.MeshHeatMethodDistanceSolver(vertices[used], local_faces.reshape(faces.shape))
    n = subset.size
    full = np.empty((n, n), dtype=np.float64)
    rows: Iterable[int] = range(n) if wrap is None else wrap(range(n))
    for i in rows:
        full[i] = solver.compute_distance(int(local[subset[i]]))[local[subset]]
    full = 0.5 * (full + full.T)
    i, j = np.tril_indices(n, k=-1)
    return full[i, j].astype(np.float32)


def condensed_index(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Index into the condensed table of the pair (i, j), i != j, in either order."""
    hi, lo = np.maximum(i, j).astype(np.int64), np.minimum(i, j).astype(np.int64)
    return hi * (hi - 1) // 2 + lo


def lookup_distance(table: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Geodesic distance between subset vertices i and j (arrays of the same shape); 0 where i == j."""
    i, j = np.asarray(i), np.asarray(j)
    same = i == j
    out = table[condensed_index(np.where(same, 1, i), np.where(same, 0, j))].astype(np.float64)
    return np.where(same, 0.0, out)
