"""The renderer's labels: exact, consistent with each other, and with correct occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from densehuman.body.charts import FINE_TO_COARSE
from densehuman.body.surface import BodySurface
from densehuman.synth.body_model import AnnyBody
from densehuman.synth.camera import Camera, look_camera
from densehuman.synth.label_mesh import LabelledMesh
from densehuman.synth.render import Lighting, RenderedScene, render_people

SIZE = (192, 160)


class FlatOutfit:
    """A one-colour outfit whose parsing label is the chart's coarse part (easy to check)."""

    def __init__(self, mesh: LabelledMesh, colour: tuple[float, float, float]) -> None:
        self.face_label = mesh.face_coarse.astype(np.uint8)
        self.colour = np.array(colour, dtype=np.float32)

    def labels_and_albedo(
        self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.face_label[face], np.broadcast_to(self.colour, (face.shape[0], 3)).copy()


def _camera() -> Camera:
    return look_camera(np.array([0.0, 0.0, 0.0]), 0.0, 0.0, 0.0, 180.0, SIZE)


def _render(
    body: AnnyBody, mesh: LabelledMesh, surface: BodySurface, offsets: list[tuple[float, float, float]]
) -> RenderedScene:
    n = len(offsets)
    rotations = np.tile(np.eye(3), (n, body.bone_count, 1, 1))
    posed = body.pose(rotations, np.array(offsets, dtype=np.float64), {})
    camera = _camera()
    lighting = Lighting(np.array([0.0, -1.0, 0.5]) / np.sqrt(1.25), 0.4, 0.6, np.ones(3))
    return render_people(
        camera,
        posed.vertices,
        mesh,
        surface.vertices.astype(np.float64),
        [FlatOutfit(mesh, (0.8, 0.2, 0.2)) for _ in range(n)],
        np.zeros((*SIZE, 3), dtype=np.uint8),
        lighting,
        np.random.default_rng(0),
    )


def test_every_triangle_has_a_chart(labelled_mesh: LabelledMesh, surface: BodySurface) -> None:
    assert labelled_mesh.face_chart.min() >= 1
    assert labelled_mesh.face_chart.max() <= 24
    skin = labelled_mesh.is_skin
    assert skin.sum() == surface.faces.shape[0]
    np.testing.assert_array_equal(labelled_mesh.face_chart[skin], surface.face_chart[labelled_mesh.skin_index[skin]])
    # Eyeballs take a head chart (23/24), never a limb chart.
    eyeball_faces = (labelled_mesh.faces >= 13574).all(axis=1)
    assert set(np.unique(labelled_mesh.face_chart[eyeball_faces])) <= {23, 24}


def test_labels_are_consistent(anny_body: AnnyBody, labelled_mesh: LabelledMesh, surface: BodySurface) -> None:
    scene = _render(anny_body, labelled_mesh, surface, [(0.0, 3.0, 0.0)])
    person = scene.instance > 0
    assert person.sum() > 1500
    np.testing.assert_array_equal(person, scene.chart > 0)
    np.testing.assert_array_equal(scene.coarse, np.asarray(FINE_TO_COARSE)[scene.chart] * person)
    np.testing.assert_array_equal(scene.parsing, scene.coarse)  # FlatOutfit labels by coarse part
    assert np.isfinite(scene.depth[person]).all()
    assert np.isinf(scene.depth[~person]).all()
    assert (scene.u[person] >= 0).all()
    assert (scene.u[person] <= 1).all()
    # Seen from the front at rest, the torso front (2) shows and the torso back (1) does not.
    charts = set(np.unique(scene.chart[person]).tolist())
    assert 2 in charts
    assert 1 not in charts
    # The body's left (+X) appears on the image's right for a body facing the camera (-Y).
    cols = np.nonzero(scene.chart == 4)[1]  # left hand
    assert cols.mean() > SIZE[1] / 2


@pytest.mark.parametrize("lateral", [0.0, 0.25])
def test_occlusion_is_a_per_pixel_depth_test(
    anny_body: AnnyBody, labelled_mesh: LabelledMesh, surface: BodySurface, lateral: float
) -> None:
    """Rendering two people together equals composing their separate renders by depth, pixel by pixel."""
    front, back = (0.0, 2.6, 0.0), (lateral, 3.6, 0.0)
    both = _render(anny_body, labelled_mesh, surface, [back, front])
    alone = [_render(anny_body, labelled_mesh, surface, [p]) for p in (back, front)]
    depth = np.stack([a.depth for a in alone])
    expected = np.where(np.isinf(depth).all(axis=0), 0, depth.argmin(axis=0) + 1)
    np.testing.assert_array_equal(both.instance, expected)
    # The person in front hides the one behind: the back person loses most of their pixels.
    seen_back = (both.instance == 1).sum()
    assert seen_back < 0.6 * (alone[0].instance == 1).sum()
    assert (both.instance == 2).sum() == (alone[1].instance == 1).sum()
    nearest = np.where(np.isinf(depth).all(axis=0), np.inf, depth.min(axis=0))
    np.testing.assert_allclose(both.depth, nearest)


def _visibility(
    body: AnnyBody,
    mesh: LabelledMesh,
    surface: BodySurface,
    heading_deg: float,
    offsets: list[tuple[float, float, float]],
) -> list[np.ndarray]:
    """Render people facing the camera turned by ``heading_deg`` and return each one's 133 keypoint visibilities."""
    from densehuman.synth.annotate import keypoint_visibility
    from densehuman.synth.landmarks import WholeBodyLandmarks
    from densehuman.synth.scene import rotation_z

    n = len(offsets)
    rotations = np.tile(np.eye(3), (n, body.bone_count, 1, 1))
    rotations[:, 0] = rotation_z(np.deg2rad(heading_deg))
    posed = body.pose(rotations, np.array(offsets, dtype=np.float64), {})
    camera = _camera()
    lighting = Lighting(np.array([0.0, -1.0, 0.0]), 0.4, 0.6, np.ones(3))
    scene = render_people(
        camera,
        posed.vertices,
        mesh,
        surface.vertices.astype(np.float64),
        [FlatOutfit(mesh, (0.5, 0.5, 0.5)) for _ in range(n)],
        np.zeros((*SIZE, 3), dtype=np.uint8),
        lighting,
        np.random.default_rng(0),
    )
    marks = WholeBodyLandmarks(body)
    points = marks(posed)
    return [
        keypoint_visibility(camera, points[k], marks.inner_depth, k + 1, scene.instance, scene.depth, 0.03)[:, 2]
        for k in range(n)
    ]


def test_keypoint_visibility_follows_the_depth_buffer(
    anny_body: AnnyBody, labelled_mesh: LabelledMesh, surface: BodySurface
) -> None:
    nose, l_eye, r_eye = 0, 1, 2
    face = slice(23, 91)
    (facing,) = _visibility(anny_body, labelled_mesh, surface, 0.0, [(0.0, 3.0, 0.0)])
    assert (facing[[nose, l_eye, r_eye]] == 2).all()
    assert (facing[face] == 2).mean() > 0.9
    (away,) = _visibility(anny_body, labelled_mesh, surface, 180.0, [(0.0, 3.0, 0.0)])
    assert (away[[nose, l_eye, r_eye]] == 1).all(), "the face is hidden by the back of the head"
    assert (away[23 + 17 : 91] == 1).all(), "brows, nose, eyes and lips are hidden"
    assert (away[face] == 1).mean() > 0.9  # only jaw points at the head's silhouette may show
    assert (away[11:13] == 2).all(), "hips are seen from behind too"
    # A person straight behind another: the hidden one's face and torso keypoints are in the image but occluded.
    _, behind = _visibility(anny_body, labelled_mesh, surface, 0.0, [(0.0, 2.6, 0.0), (0.0, 4.0, 0.0)])
    assert (behind[[nose, 5, 6, 11, 12]] == 1).all()
    assert (behind > 0).all(), "everything is inside the image"
