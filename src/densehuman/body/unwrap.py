"""Chart UV coordinates: multi-dimensional scaling of geodesic distances (the DensePose paper's method), untangling,
and the distortion measures reported for each chart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import potpourri3d as pp3d
import scipy.linalg
import scipy.sparse as sp

from densehuman.render.rasterize import signed_area


@dataclass(frozen=True)
class Distortion:
    """Area-weighted distortion of a chart's map from the surface to UV (1.0 / 0.0 is distortion-free)."""

    conformal: float  # mean of sigma_max / sigma_min per triangle (angle distortion)
    conformal_p95: float
    area: float  # mean of |log(sigma_max * sigma_min)| after a global scale (area distortion)
    stretch: float  # Sander's L2 stretch after a global scale: sqrt(mean((s1^2 + s2^2) / 2))
    flipped: int  # triangles with non-positive UV area


def measure_distortion(xyz: np.ndarray, uv: np.ndarray) -> Distortion:
    """Distortion of triangles given as (F, 3, 3) surface corners and (F, 3, 2) UV corners."""
    e1, e2 = xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0]
    area3d = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    # Each triangle in its own orthonormal 2D frame.
    ax = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    normal = np.cross(e1, e2)
    ay = np.cross(normal / np.linalg.norm(normal, axis=1, keepdims=True), ax)
    p = np.stack([np.zeros_like(area3d), np.zeros_like(area3d)], axis=1)
    q = np.stack([np.linalg.norm(e1, axis=1), np.zeros_like(area3d)], axis=1)
    r = np.stack([(e2 * ax).sum(1), (e2 * ay).sum(1)], axis=1)
    source = np.stack([q - p, r - p], axis=2)  # (F, 2, 2) columns are edges
    target = np.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], axis=2)
    uv_area = signed_area(uv)
    scale = np.sqrt(area3d.sum() / max(np.abs(uv_area).sum(), 1e-30))
    jacobian = scale * target @ np.linalg.inv(source)
    sigma = np.linalg.svd(jacobian, compute_uv=False)
    weight = area3d / area3d.sum()
    ratio = sigma[:, 0] / np.maximum(sigma[:, 1], 1e-12)
    order = np.argsort(ratio)
    p95 = ratio[order][np.searchsorted(np.cumsum(weight[order]), 0.95).clip(max=ratio.size - 1)]
    return Distortion(
        conformal=float((weight * ratio).sum()),
        conformal_p95=float(p95),
        area=float((weight * np.abs(np.log(np.maximum(sigma[:, 0] * sigma[:, 1], 1e-12)))).sum()),
        stretch=float(np.sqrt((weight * (sigma**2).sum(1) / 2).sum())),
        flipped=int((uv_area <= 0).sum()),
    )


def geodesic_distance_matrix(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(n, n) geodesic distances between all vertices of a small mesh, by the heat method, symmetrized."""
    solver = pp3d.MeshHeatMethodDistanceSolver(vertices, faces)
    dist = np.stack([solver.compute_distance(i) for i in range(vertices.shape[0])])
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    return dist


def classical_mds(dist: np.ndarray, dims: int = 2) -> np.ndarray:
    """Classical (Torgerson) multi-dimensional scaling of a distance matrix to ``dims`` coordinates."""
    n = dist.shape[0]
    centred = dist**2
    centred -= centred.mean(axis=0, keepdims=True)
    centred -= centred.mean(axis=1, keepdims=True)
    gram = -0.5 * centred
    values, vectors = scipy.linalg.eigh(gram, subset_by_index=[n - dims, n - 1])
    order = np.argsort(values)[::-1]
    return vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))


def smacof(dist: np.ndarray, init: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Stress majorization (SMACOF) refining an MDS layout towards the geodesic distances, weighted 1/d^2.

    Weighting by 1/d^2 favours short distances, so the layout becomes locally isometric rather than globally.
    """
    n = dist.shape[0]
    weight = np.zeros_like(dist)
    off = dist > 0
    weight[off] = 1.0 / dist[off] ** 2
    v = -weight.copy()
    np.fill_diagonal(v, weight.sum(axis=1))
    v_pinv = np.linalg.pinv(v + np.ones((n, n)) / n) - np.ones((n, n)) / n
    x = init.copy()
    for _ in range(iterations):
        current = np.linalg.norm(x[:, None] - x[None], axis=2)
        ratio = np.zeros_like(dist)
        ok = current > 1e-12
        ratio[ok] = weight[ok] * dist[ok] / current[ok]
        b = -ratio
        np.fill_diagonal(b, ratio.sum(axis=1))
        x = v_pinv @ (b @ x)
    return x


def vertex_adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, n) symmetric 0/1 float matrix of vertices joined by a triangle edge."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sp.csr_matrix((np.ones(edges.shape[0]), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return ((adjacency + adjacency.T) > 0).astype(np.float64).tocsr()


def untangle(uv: np.ndarray, faces: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Move the vertices of flipped triangles to the average of their neighbours until none is flipped.

    Only vertices touching a flipped triangle move, so a layout with a few folds at its rim keeps its shape.
    Returns the new layout; the caller checks whether flips remain.
    """
    uv = uv.copy()
    n = uv.shape[0]
    adjacency = vertex_adjacency(faces, n)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    for _ in range(iterations):
        flipped = signed_area(uv[faces]) <= 0
        if not flipped.any():
            break
        moving = np.zeros(n, dtype=bool)
        moving[faces[flipped].ravel()] = True
        # Grow the moving set by one ring so that a fold can open up.
        moving |= (adjacency @ moving.astype(np.float64)) > 0
        averaged = (adjacency @ uv) / degree[:, None]
        uv[moving] = averaged[moving]
    return uv


def tutte_embedding(faces: np.ndarray, n: int) -> np.ndarray:
    """Tutte's embedding: boundary on a circle by arc length, interior at the average of its neighbours.

    Guaranteed free of flips for a disk-like mesh; used only where MDS and untangling fail.
    """
    loop = boundary_loop(faces)
    adjacency = vertex_adjacency(faces, n)
    laplacian = sp.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    angle = 2 * np.pi * np.arange(loop.size) / loop.size
    fixed = np.zeros((n, 2))
    fixed[loop] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    free = np.setdiff1d(np.arange(n), loop)
    lap = laplacian.tocsr()
    rhs = -lap[free][:, loop] @ fixed[loop]
    fixed[free] = np.stack([sp.linalg.spsolve(lap[free][:, free].tocsc(), rhs[:, k]) for k in range(2)], axis=1)
    if signed_area(fixed[faces]).sum() < 0:
        fixed[:, 0] *= -1
    return fixed


def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """Vertices of the longest boundary loop of a mesh, in order."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    as_set = {(int(a), int(b)) for a, b in directed}
    nxt = {a: b for a, b in as_set if (b, a) not in as_set}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(loop)
    if not loops:
        raise ValueError("mesh has no boundary")
    return np.asarray(max(loops, key=len), dtype=np.int64)
