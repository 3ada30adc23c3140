from __future__ import annotations

import numpy as np
import pytest

from densehuman.body.unwrap import (
    boundary_loop,
    classical_mds,
    geodesic_distance_matrix,
    measure_distortion,
    smacof,
    tutte_embedding,
    untangle,
)
from densehuman.render.rasterize import signed_area


def _grid(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A flat n x n grid of unit squares bent into a half cylinder (a developable surface), and its triangles."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    flat = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
    radius = (n - 1) / np.pi
    angle = flat[:, 0] / radius
    bent = np.stack([radius * np.cos(angle), radius * np.sin(angle), flat[:, 1]], axis=1)
    idx = i * n + j
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return bent, faces


def test_mds_of_geodesics_unrolls_a_developable_surface() -> None:
    bent, faces = _grid()
    dist = geodesic_distance_matrix(bent, faces)
    uv = smacof(dist, classical_mds(dist))
    if signed_area(uv[faces]).sum() < 0:
        uv[:, 0] *= -1
    d = measure_distortion(bent[faces], uv[faces])
    assert d.flipped == 0
    assert d.conformal < 1.2  # a 12 x 12 grid limits the heat method's accuracy
    assert d.area < 0.2
    # Straight-line (Euclidean) distances cannot unroll it: the same pipeline squashes the sides.
    euclid = np.linalg.norm(bent[:, None] - bent[None], axis=2)
    squashed = classical_mds(euclid)
    if signed_area(squashed[faces]).sum() < 0:
        squashed[:, 0] *= -1
    assert measure_distortion(bent[faces], squashed[faces]).area > 2 * d.area


def test_distortion_of_an_isometry_is_none_and_of_a_stretch_is_measured() -> None:
    _, faces = _grid(5)
    i, j = np.meshgrid(np.arange(5.0), np.arange(5.0), indexing="ij")
    flat = np.stack([i.ravel(), j.ravel()], 1)
    xyz = np.concatenate([flat, np.zeros((25, 1))], 1)
    d = measure_distortion(xyz[faces], flat[faces])
    assert d.conformal == pytest.approx(1.0)
    assert d.area == pytest.approx(0.0, abs=1e-12)
    stretched = measure_distortion(xyz[faces], (flat * [2.0, 1.0])[faces])
    assert stretched.conformal == pytest.approx(2.0)
    mirrored = measure_distortion(xyz[faces], (flat * [-1.0, 1.0])[faces])
    assert mirrored.flipped == faces.shape[0]


def test_untangle_and_tutte_remove_folds() -> None:
    _, faces = _grid(8)
    flat_faces = faces
    i, j = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    uv = np.stack([i.ravel(), j.ravel()], 1)
    if signed_area(uv[flat_faces]).sum() < 0:
        uv[:, 0] *= -1
    folded = uv.copy()
    folded[3 * 8 + 3] += [2.5, 0.0]  # pushes one interior vertex over its neighbours
    assert (signed_area(folded[faces]) <= 0).any()
    assert (signed_area(untangle(folded, faces)[faces]) > 0).all()
    tutte = tutte_embedding(faces, 64)
    assert (signed_area(tutte[faces]) > 0).all()
    assert boundary_loop(faces).size == 28
