"""Invariants of the built body surface: charts, UVs, coarse parts, symmetry, surface points, geodesics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from densehuman.body.charts import FINE_TO_COARSE, NUM_CHARTS, POINT_LABEL_SYMMETRIES
from densehuman.body.segmentation import face_adjacency
from densehuman.body.surface import BodySurface, SurfacePoints
from densehuman.render.rasterize import signed_area


def _random_points(surface: BodySurface, n: int, seed: int) -> SurfacePoints:
    rng = np.random.default_rng(seed)
    bary = rng.dirichlet(np.ones(3), size=n)
    return SurfacePoints(rng.integers(0, surface.faces.shape[0], n), bary)


def test_every_face_has_one_chart_and_every_chart_is_one_piece(surface: BodySurface) -> None:
    assert surface.face_chart.shape == (surface.faces.shape[0],)
    assert set(np.unique(surface.face_chart).tolist()) == set(range(1, NUM_CHARTS + 1))
    adjacency = face_adjacency(surface.faces)
    for c in range(1, NUM_CHARTS + 1):
        members = np.flatnonzero(surface.face_chart == c)
        count, _ = connected_components(adjacency[members][:, members], directed=False)
        assert count == 1, f"chart {c} has {count} pieces"


def test_skin_is_closed_but_for_eye_and_mouth_openings(surface: BodySurface) -> None:
    edges = np.sort(np.concatenate([surface.faces[:, [0, 1]], surface.faces[:, [1, 2]], surface.faces[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2  # manifold
    assert (counts == 1).sum() == 28 + 28 + 38  # the three openings left where the cavities were


def test_uv_fills_unit_square_without_flips(surface: BodySurface) -> None:
    uv = surface.corner_uv
    assert uv.min() >= 0.0
    assert uv.max() <= 1.0
    area = signed_area(uv.astype(np.float64))
    assert (area > 0).all(), f"{(area <= 0).sum()} triangles flip orientation in UV"
    for c in range(1, NUM_CHARTS + 1):
        chart_uv = uv[surface.face_chart == c].reshape(-1, 2)
        np.testing.assert_allclose(chart_uv.min(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(chart_uv.max(axis=0), 1.0, atol=1e-6)
        covered = area[surface.face_chart == c].sum()
        assert covered > 0.35, f"chart {c} covers only {covered:.2f} of the unit square"


def test_uv_triangles_do_not_overlap(surface: BodySurface) -> None:
    """A one-to-one chart: the UV areas of its triangles add up to the area their union covers."""
    from densehuman.render.rasterize import rasterize

    size = 512
    for c in (2, 4, 15, 24):
        tri = surface.corner_uv[surface.face_chart == c].reshape(-1, 2).astype(np.float64) * size
        faces = np.arange(tri.shape[0]).reshape(-1, 3)
        union = rasterize(tri, np.ones(tri.shape[0]), faces, (size, size)).mask.sum()
        total = signed_area(tri[faces]).sum()
        assert union == pytest.approx(total, rel=0.02), c


def test_coarse_parts(surface: BodySurface) -> None:
    coarse = surface.face_coarse_part
    assert set(np.unique(coarse).tolist()) == set(range(1, 15))
    assert (coarse == np.asarray(FINE_TO_COARSE)[surface.face_chart]).all()


def test_charts_follow_anatomy(surface: BodySurface) -> None:
    """Left charts lie at x > 0 (Anny's bodies face -Y with their left at +X), front charts in front of back ones."""
    centroid = surface.vertices[surface.faces].mean(axis=1)
    chart = surface.face_chart

    def mean_of(c: int, axis: int) -> float:
        return float(centroid[chart == c, axis].mean())

    for left, right in ((4, 3), (5, 6), (8, 7), (10, 9), (15, 16), (21, 22), (24, 23)):
        assert mean_of(left, 0) > 0 > mean_of(right, 0)
    for front, back in ((2, 1), (9, 7), (13, 11), (15, 17), (21, 19)):
        assert mean_of(front, 1) < mean_of(back, 1)
    assert mean_of(24, 2) > mean_of(2, 2) > mean_of(9, 2) > mean_of(13, 2) > mean_of(5, 2)
    assert mean_of(15, 2) > mean_of(21, 2) > mean_of(4, 2)


def test_mirror_maps_are_involutions_onto_mirror_charts(surface: BodySurface) -> None:
    assert (surface.vertex_mirror[surface.vertex_mirror] == np.arange(surface.vertices.shape[0])).all()
    assert (surface.face_mirror[surface.face_mirror] == np.arange(surface.faces.shape[0])).all()
    sym = np.asarray(POINT_LABEL_SYMMETRIES)
    assert (surface.face_chart[surface.face_mirror] == sym[surface.face_chart]).all()
    mirrored = surface.vertices[surface.vertex_mirror] * np.array([-1, 1, 1])
    assert np.abs(mirrored - surface.vertices).max() < 1e-3


def test_flip_twice_is_identity_and_lands_on_mirror_point(surface: BodySurface) -> None:
    points = _random_points(surface, 3000, seed=1)
    i, u, v = surface.chart_coordinates(points)
    fi, fu, fv = surface.flip_chart_coordinates(i, u, v)
    ii, uu, vv = surface.flip_chart_coordinates(fi, fu, fv)
    assert (ii == i).all()
    np.testing.assert_allclose(uu, u, atol=1e-12)
    np.testing.assert_allclose(vv, v, atol=1e-12)
    # The flipped coordinates name the mirror image of the original point on the surface.
    flipped = surface.surface_points(fi, fu, fv)
    error = np.linalg.norm(surface.positions(flipped) - surface.positions(points) * np.array([-1, 1, 1]), axis=1)
    assert np.quantile(error, 0.99) < 2e-3, f"99% flip error {np.quantile(error, 0.99) * 1000:.2f} mm"
    mirrored = surface.mirror_points(points)
    np.testing.assert_allclose(surface.positions(mirrored), surface.positions(points) * np.array([-1, 1, 1]), atol=1e-3)
    geodesic = surface.geodesic_distance(flipped, mirrored)
    # Both sides look up mirror-image table vertices; only where a point is nearly equidistant from two of them
    # may the choice differ, by one table spacing (a few centimetres).
    assert (geodesic == 0).mean() > 0.98
    assert geodesic.max() < 0.06


def test_uv_symmetry_transforms_match_flip(surface: BodySurface) -> None:
    u_t, v_t = surface.uv_symmetry_transforms(256)
    assert u_t.shape == v_t.shape == (24, 256, 256)
    rng = np.random.default_rng(2)
    i, u, v = rng.integers(1, 25, 100), rng.random(100), rng.random(100)
    u_loc, v_loc = (u * 255).astype(int), (v * 255).astype(int)
    _, fu, fv = surface.flip_chart_coordinates(i, u_loc / 255, v_loc / 255)
    np.testing.assert_allclose(u_t[i - 1, v_loc, u_loc], fu, atol=1e-6)
    np.testing.assert_allclose(v_t[i - 1, v_loc, u_loc], fv, atol=1e-6)


def test_chart_coordinates_round_trip(surface: BodySurface) -> None:
    points = _random_points(surface, 5000, seed=3)
    i, u, v = surface.chart_coordinates(points)
    back = surface.surface_points(i, u, v)
    np.testing.assert_allclose(surface.positions(back), surface.positions(points), atol=1e-6)
    i2, u2, v2 = surface.chart_coordinates(back)
    assert (i2 == i).all()
    np.testing.assert_allclose(np.stack([u2, v2]), np.stack([u, v]), atol=1e-9)


def test_points_outside_the_layout_snap_into_the_chart(surface: BodySurface) -> None:
    points = surface.surface_points(np.full(4, 24), np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert (surface.face_chart[points.face] == 24).all()
    assert (points.bary >= 0).all()
    np.testing.assert_allclose(points.bary.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="chart ids"):
        surface.surface_points(np.array([25]), np.array([0.5]), np.array([0.5]))


def test_nearest_vertex_is_a_corner(surface: BodySurface) -> None:
    points = _random_points(surface, 100, seed=4)
    nearest = surface.nearest_vertex(points)
    assert (surface.faces[points.face] == nearest[:, None]).any(axis=1).all()


def test_geodesic_table_is_a_metric_on_samples(surface: BodySurface) -> None:
    rng = np.random.default_rng(5)
    n = surface.geodesic_vertices.size
    i, j, k = (rng.integers(0, n, 20000) for _ in range(3))
    d_ij, d_ji = surface.table_distance(i, j), surface.table_distance(j, i)
    np.testing.assert_array_equal(d_ij, d_ji)
    assert (surface.table_distance(i, i) == 0).all()
    assert (d_ij[i != j] > 0).all()
    slack = surface.table_distance(i, k) + surface.table_distance(k, j) - d_ij
    # The heat method is not exactly a metric; violations stay within a few millimetres.
    assert slack.min() > -0.005, f"triangle inequality violated by {-slack.min() * 1000:.1f} mm"
    assert (slack < -0.001).mean() < 0.01


def test_geodesics_agree_with_exact_geodesics(surface: BodySurface) -> None:
    geodesic = pytest.importorskip("pygeodesic.geodesic")
    used, local = np.unique(surface.faces, return_inverse=True)
    exact = geodesic.PyGeodesicAlgorithmExact(surface.vertices[used].astype(np.float64), local.reshape(-1, 3))
    position = np.searchsorted(used, surface.geodesic_vertices)
    rng = np.random.default_rng(6)
    sources = rng.choice(surface.geodesic_vertices.size, 4, replace=False)
    errors = []
    for s in sources:
        truth, _ = exact.geodesicDistances(np.array([position[s]]), None)
        table = surface.table_distance(
            np.full(surface.geodesic_vertices.size, s), np.arange(surface.geodesic_vertices.size)
        )
        far = truth[position] > 0.05
        errors.append(np.abs(table - truth[position])[far] / truth[position][far])
    relative = np.concatenate(errors)
    assert np.median(relative) < 0.02
    assert np.quantile(relative, 0.99) < 0.06


def test_gps_lookup_uses_the_same_chart(surface: BodySurface) -> None:
    points = _random_points(surface, 500, seed=7)
    i, u, v = surface.chart_coordinates(points)
    table_vertex = surface.closest_table_vertex(i, u, v)
    assert (table_vertex >= 0).all()
    vertex = surface.geodesic_vertices[table_vertex]
    # The chosen table vertex is a corner of some face of the same chart, close to the point on the body.
    vertex_charts = [set(surface.face_chart[(surface.faces == x).any(axis=1)].tolist()) for x in vertex]
    assert all(int(c) in s for c, s in zip(i, vertex_charts, strict=True))
    distance = np.linalg.norm(surface.vertices[vertex] - surface.positions(points), axis=1)
    assert np.median(distance) < 0.02
    assert (surface.closest_table_vertex(np.array([0]), np.array([0.5]), np.array([0.5])) == -1).all()
