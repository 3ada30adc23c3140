# ruff: noqa: E741  (I, U, V are the DensePose names of the chart and coordinate maps)
from __future__ import annotations

import numpy as np
import pytest

from densehuman.body.preview import chart_palette
from densehuman.visualization.densepose import (
    U_LINE_COLOUR,
    V_LINE_COLOUR,
    VISUALIZATIONS,
    DenseMaps,
    atlas_coordinates,
    boxes,
    chart_segmentation,
    checker_atlas,
    contour_mask,
    contours,
    extract_texture,
    iuv_image,
    side_by_side,
    texture_transfer,
    uv_image,
)

H, W = 96, 128


def _maps() -> DenseMaps:
    """Two people: a block split into charts 1 (top) / 2 (bottom), and a block of chart 15; U, V linear ramps."""
    I = np.zeros((H, W), np.uint8)
    U = np.zeros((H, W), np.float32)
    V = np.zeros((H, W), np.float32)
    inst = np.zeros((H, W), np.uint8)
    I[10:50, 8:60], I[50:90, 8:60], I[20:80, 75:120] = 1, 2, 15
    inst[10:90, 8:60], inst[20:80, 75:120] = 1, 2
    for r0, r1, c0, c1 in ((10, 50, 8, 60), (50, 90, 8, 60), (20, 80, 75, 120)):
        yy, xx = np.mgrid[r0:r1, c0:c1]
        U[r0:r1, c0:c1] = (xx - c0) / (c1 - c0 - 1)
        V[r0:r1, c0:c1] = 1.0 - (yy - r0) / (r1 - r0 - 1)
    box = np.array([[8, 10, 60, 90], [75, 20, 120, 80]], np.float32)
    return DenseMaps(I, U, V, inst, box, np.array([0.98, 0.71], np.float32))


@pytest.fixture
def scene() -> tuple[np.ndarray, DenseMaps]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8), _maps()


def test_every_visualization_keeps_size_and_dtype(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    before = image.copy()
    assert set(VISUALIZATIONS) == {"segm", "u", "v", "iuv", "contour", "bbox", "texture"}
    for name, fn in VISUALIZATIONS.items():
        out = fn(image, maps)
        assert out.shape == (H, W, 3), name
        assert out.dtype == np.uint8, name
        assert not np.array_equal(out, image), name  # it drew something
    np.testing.assert_array_equal(image, before)  # inputs untouched


@pytest.mark.parametrize("name", ["segm", "u", "v", "texture"])
def test_person_only_visualizations_keep_background(scene: tuple[np.ndarray, DenseMaps], name: str) -> None:
    image, maps = scene
    out = VISUALIZATIONS[name](image, maps)
    background = maps.I == 0
    np.testing.assert_array_equal(out[background], image[background])
    assert (out[~background] != image[~background]).any(axis=1).mean() > 0.9


def test_segmentation_colours_known_answer(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    out = chart_segmentation(image, maps.I, alpha=1.0)
    np.testing.assert_array_equal(out[15, 20], chart_palette()[1])
    np.testing.assert_array_equal(out[60, 20], chart_palette()[2])
    np.testing.assert_array_equal(out[30, 100], chart_palette()[15])
    half = chart_segmentation(image, maps.I, alpha=0.5)
    expected = np.rint(0.5 * image[30, 100].astype(float) + 0.5 * chart_palette()[15])
    np.testing.assert_allclose(half[30, 100], expected, atol=1)


def test_uv_image_is_jet_of_the_coordinate(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    out_u = uv_image(image, maps.I, maps.U, maps.V, which="u", alpha=1.0)
    # U = 0 at the left edge of a chart -> JET blue, U = 1 at the right edge -> JET red (dark).
    left, right = out_u[30, 8].astype(int), out_u[30, 59].astype(int)
    assert left[2] > 100
    assert left[0] < 30
    assert right[0] > 100
    assert right[2] < 30
    out_v = uv_image(image, maps.I, maps.U, maps.V, which="v", alpha=1.0)
    assert out_v[10, 30, 0] > 100
    assert out_v[49, 30, 2] > 100
    with pytest.raises(ValueError, match="which"):
        uv_image(image, maps.I, maps.U, maps.V, which="w")


def test_iuv_image_encoding(scene: tuple[np.ndarray, DenseMaps]) -> None:
    _, maps = scene
    out = iuv_image(maps.I, maps.U, maps.V)
    np.testing.assert_array_equal(out[maps.I == 0], 0)
    person = maps.I > 0
    np.testing.assert_array_equal(out[..., 0][person] // 10, maps.I[person])
    np.testing.assert_array_equal(out[..., 1][person], (maps.U[person] * np.float32(255)).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 2][person], (maps.V[person] * np.float32(255)).astype(np.uint8))


def test_contours_only_inside_people_and_at_the_levels(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    for thickness in (1, 3):
        out = contours(image, maps.I, maps.U, maps.V, levels=10, thickness=thickness)
        changed = (out != image).any(axis=2)
        assert changed.any()
        assert not (changed & (maps.I == 0)).any()
    out = contours(image, maps.I, maps.U, maps.V, levels=4)
    # Chart 15 spans columns 75..119 with U linear: iso-U lines are vertical, one per interior level (3 of them).
    u_cols = np.flatnonzero((out[50, 75:120] == U_LINE_COLOUR).all(axis=1))
    assert len(u_cols) == 3
    np.testing.assert_allclose(75 + u_cols, 75 + np.array([0.25, 0.5, 0.75]) * 44, atol=1.0)
    v_rows = np.flatnonzero((out[20:80, 100] == V_LINE_COLOUR).all(axis=1))
    assert len(v_rows) == 3
    # No line along the boundary between charts 1 and 2: V jumps from 0 to 1 there, but pairs across charts are skipped.
    mask_v = contour_mask(maps.I.astype(np.int64), maps.V, 4)
    assert not mask_v[49, 8:60].any()


def test_boxes_draw_rectangles_and_check_scores(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    blank = np.zeros_like(image)
    out = boxes(blank, maps.boxes, maps.scores, colour=(0, 255, 0), thickness=1)
    assert (out[50, 8] == (0, 255, 0)).all()
    assert (out[10, 30] == (0, 255, 0)).all()
    assert (out[50, 30] == 0).all()  # interior untouched
    with pytest.raises(ValueError, match="scores"):
        boxes(blank, maps.boxes, np.array([0.5]))


def test_texture_transfer_constant_atlas_colours_exactly_person_pixels(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    atlas = np.full((800, 1200, 3), (12, 200, 77), np.uint8)
    out = texture_transfer(image, maps.I, maps.U, maps.V, atlas)
    person = maps.I > 0
    assert (out[person] == (12, 200, 77)).all()
    np.testing.assert_array_equal(out[~person], image[~person])


def test_texture_lookup_matches_notebook_formula() -> None:
    # Chart 8 -> tile row 1, column 1; U = 1, V = 0 -> texel (199, 199) of that tile: tex[(255 - 0) * 199 / 255, ..].
    rows, cols = atlas_coordinates(np.array([8, 1, 24]), np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5]), 200)
    np.testing.assert_array_equal(rows, [200 + 199, 0, 600 + int((255 - 127) * 199 / 255)])
    np.testing.assert_array_equal(cols, [200 + 199, 0, 1000 + int(127 * 199 / 255)])


def test_extract_then_transfer_round_trip() -> None:
    maps = _maps()
    person = maps.I > 0
    # A smooth picture: colours follow U, V and the chart, so pixels sharing a texel have nearly equal colours.
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = np.rint(maps.U * 255)
    image[..., 1] = np.rint(maps.V * 255)
    image[..., 2] = maps.I * 10
    atlas, filled = extract_texture(image, maps.I, maps.U, maps.V)
    assert atlas.shape == (800, 1200, 3)
    assert atlas.dtype == np.uint8
    assert filled.shape == (800, 1200)
    assert filled.dtype == bool
    rows, cols = atlas_coordinates(maps.I[person], maps.U[person], maps.V[person], 200)
    assert filled[rows, cols].all()
    assert filled.sum() == len(set(zip(rows.tolist(), cols.tolist(), strict=True)))
    assert not atlas[~filled].any()
    back = texture_transfer(np.zeros_like(image), maps.I, maps.U, maps.V, atlas)
    diff = np.abs(back[person].astype(int) - image[person].astype(int))
    assert diff.max() <= 3
    # Exact when the picture is a function of the texel itself.
    texel_image = np.zeros_like(image)
    texel_image[person] = np.stack([rows % 256, cols % 256, rows // 4 % 256], axis=1)
    atlas2, _ = extract_texture(texel_image, maps.I, maps.U, maps.V)
    np.testing.assert_array_equal(texture_transfer(image, maps.I, maps.U, maps.V, atlas2)[person], texel_image[person])


@pytest.mark.parametrize("shape", [(1200, 800, 3), (800, 1200), (800, 1200, 4), (801, 1200, 3), (0, 0, 3)])
def test_bad_atlas_shapes_raise(scene: tuple[np.ndarray, DenseMaps], shape: tuple[int, ...]) -> None:
    image, maps = scene
    with pytest.raises(ValueError, match="atlas"):
        texture_transfer(image, maps.I, maps.U, maps.V, np.zeros(shape, np.uint8))


def test_bad_maps_raise(scene: tuple[np.ndarray, DenseMaps]) -> None:
    image, maps = scene
    with pytest.raises(ValueError, match="I must"):
        chart_segmentation(image, maps.I[:-1])
    with pytest.raises(ValueError, match="I must be in"):
        chart_segmentation(image, np.full((H, W), 25, np.uint8))
    with pytest.raises(ValueError, match="image"):
        chart_segmentation(image.astype(np.float32), maps.I)


def test_side_by_side_and_checker_atlas() -> None:
    a, b = np.full((4, 3, 3), 7, np.uint8), np.full((6, 2, 3), 9, np.uint8)
    out = side_by_side(a, b, gap=1)
    assert out.shape == (6, 6, 3)
    assert out.dtype == np.uint8
    assert (out[:4, :3] == 7).all()
    assert (out[4:, :3] == 0).all()
    assert (out[:, 3] == 0).all()
    assert (out[:, 4:] == 9).all()
    atlas = checker_atlas()
    assert atlas.shape == (800, 1200, 3)
    np.testing.assert_array_equal(atlas[0, 0], chart_palette()[1])
    np.testing.assert_array_equal(atlas[799, 1199], chart_palette()[24])


def test_visualizations_of_an_image_without_people() -> None:
    from densehuman.visualization.densepose import VISUALIZATIONS, DenseMaps

    image = np.full((20, 30, 3), 77, dtype=np.uint8)
    maps = DenseMaps(
        np.zeros((20, 30), np.uint8),
        np.zeros((20, 30), np.float32),
        np.zeros((20, 30), np.float32),
        np.zeros((20, 30), np.uint8),
        np.zeros((0, 4)),
        np.zeros(0),
    )
    for name, make in VISUALIZATIONS.items():
        out = make(image, maps)
        assert out.shape == image.shape, name
        if name != "iuv":
            np.testing.assert_array_equal(out, image, err_msg=name)
