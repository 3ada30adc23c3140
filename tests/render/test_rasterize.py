from __future__ import annotations

import numpy as np
import pytest

from densehuman.render.rasterize import rasterize, signed_area


def test_triangle_covers_its_area_and_interpolates() -> None:
    verts = np.array([[0.0, 0.0], [64.0, 0.0], [0.0, 64.0]])
    frags = rasterize(verts, np.array([1.0, 2.0, 3.0]), np.array([[0, 1, 2]]), (64, 64))
    assert frags.mask.sum() == pytest.approx(64 * 64 / 2, rel=0.03)
    assert frags.face[0, 0] == 0
    assert frags.face[63, 63] == -1
    np.testing.assert_allclose(frags.bary[frags.mask].sum(axis=1), 1.0, atol=1e-6)
    # Depth is interpolated: at pixel centre (x, y) = (16.5, 8.5) it is 1 + x/64 + 2 y/64.
    assert frags.depth[8, 16] == pytest.approx(1 + 16.5 / 64 + 2 * 8.5 / 64, abs=1e-5)


def test_nearer_triangle_wins_whatever_the_order() -> None:
    square = np.array([[0.0, 0.0], [32.0, 0.0], [32.0, 32.0], [0.0, 32.0]])
    verts = np.concatenate([square, square])
    depth = np.array([5.0] * 4 + [2.0] * 4)
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    for order in (faces, faces[::-1]):
        frags = rasterize(verts, depth, order, (32, 32))
        assert frags.mask.all()
        assert (np.isin(order[frags.face][..., 0], [4])).all()
        np.testing.assert_allclose(frags.depth, 2.0)


def test_backface_culling_and_clipping() -> None:
    ccw_on_screen = np.array([[0.0, 0.0], [0.0, 20.0], [20.0, 0.0]])  # negative signed area with y down
    assert signed_area(ccw_on_screen[None])[0] < 0
    faces = np.array([[0, 1, 2]])
    assert rasterize(ccw_on_screen, np.ones(3), faces, (20, 20), cull_backfaces=True).mask.any()
    assert not rasterize(ccw_on_screen, np.ones(3), faces[:, ::-1], (20, 20), cull_backfaces=True).mask.any()
    off_image = ccw_on_screen + 100
    assert not rasterize(off_image, np.ones(3), faces, (20, 20)).mask.any()
    with pytest.raises(ValueError, match="size"):
        rasterize(ccw_on_screen, np.ones(3), faces, (0, 20))
