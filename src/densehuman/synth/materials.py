"""Materials of an outfit: palettes, skin tones, procedural patterns and the albedo they paint.

Every outfit has one material per slot (``SLOTS``: skin, eyes, hair, each garment, ...); the garment regions
(``densehuman.synth.garments``) say which slot paints each point of the body. Colours and patterns are functions of
the point's rest-body position (3D patterns, no UV seams), so they stick to the body in every pose. Albedo values are
display (sRGB-encoded) RGB in [0, 1].
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any

import numpy as np

# Material slots (one material per slot per outfit) and the shader kinds that paint them.
SLOTS = ("skin", "eyes", "cavity", "tongue", "hair", "upper", "dress", "coat", "pants", "skirt", "socks", "shoes",
         "gloves", "hat", "scarf", "sunglasses")  # fmt: skip
SLOT = {name: k for k, name in enumerate(SLOTS)}
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


@dataclass(frozen=True)
class Materials:
    """One material per slot (``SLOTS``) plus the outfit's shared noise waves; float32 for fast shading."""

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

    def albedo(self, slot: np.ndarray, p: np.ndarray, marks: dict[str, float], eye_centres: np.ndarray) -> np.ndarray:
        """(N, 3) float32 albedo of fragments with material ``slot`` (N,) at rest positions ``p`` (N, 3) float32.

        ``marks`` are the rest body's face landmarks (``RestBody.marks``: eye_x, eye_y, eye_z, mouth_x, ...) and
        ``eye_centres`` (2, 3) its eyeball centres, left (+X) first; they place the lips, brows and irises.
        """
        n = slot.shape[0]
        kind = np.take(self.kind, slot)
        mix = np.zeros(n, dtype=np.float32)
        present = np.flatnonzero(np.bincount(kind, minlength=EYES + 1))
        groups = {int(k): np.flatnonzero(kind == k) for k in present}
        for k, i in groups.items():
            q, s = p[i], slot[i]
            if k == STRIPES:
                mix[i] = _band(np.einsum("nd,nd->n", q, self.direction[s]) * self.freq[s], self.duty[s], self.soft[s])
            elif k == CHECKS:
                f, duty, soft = self.freq[s], self.duty[s], self.soft[s]
                xy = np.maximum(_band(q[:, 0] * f, duty, soft), _band(q[:, 1] * f, duty, soft))
                mix[i] = 0.5 * (xy + _band(q[:, 2] * f, duty, soft))
            elif k == DOTS:
                c = q * self.freq[s][:, None]
                r2 = np.square(c - np.round(c)).sum(axis=1)
                rad2 = np.square(self.duty[s])
                mix[i] = smoothstep(rad2 * (1 + self.soft[s]), rad2 * (1 - self.soft[s]), r2)
            elif k == NOISE:
                mix[i] = smoothstep(
                    self.duty[s] - self.soft[s], self.duty[s] + self.soft[s], 0.5 + 0.22 * self._noise(q, self.freq[s])
                )
            elif k == GRADIENT:
                along = np.einsum("nd,nd->n", q, self.direction[s]) - self.offset[s]
                mix[i] = np.clip(0.5 + along * self.freq[s], 0.0, 1.0)
            elif k == HAIR_KIND:
                streak = self._noise(q * np.array([1.0, 1.0, 0.12], dtype=np.float32), self.freq[s])
                mix[i] = np.clip(0.5 + 0.4 * streak, 0.0, 1.0) * self.duty[s]
        base = np.take(self.base, slot, axis=0)
        out = base + (np.take(self.second, slot, axis=0) - base) * mix[:, None]
        # Fabric grain (three fine waves) and skin mottling (three coarse ones) in one pass over all fragments.
        texture = np.sin(p @ self.texture_waves.T + self.texture_phase) @ _FINE_COARSE
        out *= (1 + np.take(self.grain, slot) * texture[:, 0] + np.take(self.mottle, slot) * texture[:, 1])[:, None]
        if SKIN in groups:
            out[groups[SKIN]] = self._skin(out[groups[SKIN]], p[groups[SKIN]], marks)
        if EYES in groups:
            out[groups[EYES]] = self._eyes(p[groups[EYES]], self.base[SLOT["eyes"]], eye_centres)
        return np.clip(out, 0.0, 1.0, out=out)

    def _noise(self, q: np.ndarray, freq: np.ndarray | np.float32) -> np.ndarray:
        """Sum of plane waves at ``freq`` cycles per metre: smooth, roughly unit variance, cheap."""
        scale = np.asarray(freq, dtype=np.float32).reshape(-1, 1) * np.float32(2 * np.pi)
        arg = (q @ self.waves.T) * scale + self.phase
        return np.sin(arg, out=arg).sum(axis=1) * np.float32(np.sqrt(2.0 / arg.shape[1]))

    def _skin(self, rgb: np.ndarray, q: np.ndarray, mk: dict[str, float]) -> np.ndarray:
        """Skin tone variation, lips and eyebrows (the face's landmarks ``mk`` are on the rest body)."""
        h = np.flatnonzero(q[:, 2] > mk["mouth_z"] - 0.03)
        if h.size == 0:
            return rgb
        x, y, z = np.abs(q[h, 0]), q[h, 1], q[h, 2]
        up = z > mk["mouth_z"]
        r2 = np.square(x / (mk["mouth_x"] + 0.003)) + np.square((z - mk["mouth_z"]) / np.where(up, 0.0085, 0.0105))
        lip = smoothstep(1.0, 0.7, r2) * (y < mk["mouth_y"] + 0.012)
        u = (x - mk["eye_x"] + 0.017) / 0.038  # 0 at the brow's inner end, 1 at its outer end
        centre = mk["eye_z"] + 0.0185 + 0.005 * np.sin(np.pi * np.clip(u, 0, 1)) - 0.004 * u
        width = 0.0042 * (1.0 - 0.55 * np.clip(u, 0, 1))
        brow = smoothstep(width, 0.5 * width, np.abs(z - centre)) * smoothstep(-0.15, 0.1, u)
        brow *= smoothstep(1.1, 0.95, u) * (y < mk["eye_y"] + 0.005)
        part = rgb[h]
        part += (self.lips - part) * lip[:, None]
        part += (self.brows - part) * (0.85 * brow)[:, None]
        rgb[h] = part
        return rgb

    def _eyes(self, q: np.ndarray, sclera: np.ndarray, eye_centres: np.ndarray) -> np.ndarray:
        """White eyeballs with a coloured iris and a dark pupil looking along -Y."""
        d = q - eye_centres.astype(np.float32)[np.where(q[:, 0] > 0, 0, 1)]
        c = -d[:, 1] / (np.linalg.norm(d, axis=1) + 1e-9)  # cosine of the angle from straight ahead
        out = np.broadcast_to(sclera, q.shape).copy()
        out += (self.iris - out) * smoothstep(0.9, 0.925, c)[:, None]
        out *= (1 - 0.92 * smoothstep(0.983, 0.99, c))[:, None]
        return out


def smoothstep(e0: Any, e1: Any, x: np.ndarray) -> np.ndarray:
    """float32 Hermite step: 0 at ``x <= e0``, 1 at ``x >= e1`` (``e0 > e1`` gives the falling step)."""
    t = np.clip((x - e0) / (np.asarray(e1) - e0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _band(x: np.ndarray, duty: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Soft-edged periodic bands: 1 on a ``duty`` fraction of each period (x in periods), 0 elsewhere."""
    tri = np.abs(2 * (x - np.floor(x)) - 1)  # 0 mid-period, 1 at the period ends
    return smoothstep(1 - duty - soft, 1 - duty + soft, tri)


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


def sample_materials(
    rng: np.random.Generator, d: dict[str, Any], face_z: np.ndarray, slot: np.ndarray
) -> tuple[Materials, dict[str, Any]]:
    """Materials of every slot; returns them with a JSON-able account of the looks chosen.

    ``d`` is the outfit's garment description (its keys say which garments are worn), ``face_z`` (F,) the rest
    height (metres) of each triangle's centre and ``slot`` (F,) each triangle's material slot (gradient extents).
    """
    u = rng.uniform
    n = len(SLOTS)
    base, second = np.full((n, 3), 0.5), np.full((n, 3), 0.5)
    kind, direction = np.full(n, SOLID), np.tile([0.0, 0.0, 1.0], (n, 1))
    freq, duty, soft, grain, offset = np.ones(n), np.full(n, 0.5), np.full(n, 0.05), np.zeros(n), np.zeros(n)
    looks: dict[str, Any] = {}
    t = rng.random()
    tone = np.array([np.interp(t * (len(_SKIN_TONES) - 1), np.arange(len(_SKIN_TONES)), c) for c in _SKIN_TONES.T])
    tone = np.clip(tone * u(0.95, 1.05) * np.array([1 + u(-0.03, 0.03), 1.0, 1 + u(-0.05, 0.03)]), 0, 1)
    base[SLOT["skin"]], kind[SLOT["skin"]] = tone, SKIN
    looks["skin"] = {"tone": t, "rgb": tone}
    iris_name = str(rng.choice(["brown", "dark", "blue", "green"], p=[0.55, 0.2, 0.12, 0.13]))
    iris = {"brown": (0.3, 0.18, 0.1), "dark": (0.12, 0.08, 0.05), "blue": (0.3, 0.45, 0.6), "green": (0.35, 0.4, 0.2)}
    base[SLOT["eyes"]], kind[SLOT["eyes"]] = np.array([0.88, 0.86, 0.82]) * u(0.85, 1.0), EYES
    looks["eyes"] = {"iris": iris_name}
    base[SLOT["cavity"]] = np.array([0.22, 0.06, 0.06]) * u(0.6, 1.2)
    base[SLOT["tongue"]] = np.array([0.72, 0.38, 0.4]) * u(0.85, 1.05)
    k = rng.choice(len(_HAIR_COLOURS) + 1, p=[*_HAIR_P, 1 - sum(_HAIR_P)])
    hair_name = [*_HAIR_COLOURS, "dyed"][k]
    hair = np.array(_HAIR_COLOURS.get(hair_name, colorsys.hsv_to_rgb(rng.random(), 0.7, 0.6))) * u(0.85, 1.15)
    base[SLOT["hair"]], second[SLOT["hair"]], kind[SLOT["hair"]] = hair, np.clip(hair * 1.6 + 0.05, 0, 1), HAIR_KIND
    freq[SLOT["hair"]], duty[SLOT["hair"]] = u(30, 70), u(0.2, 0.6)
    if "hair" in d:
        looks["hair"] = {"colour_name": hair_name, "colour": hair}
    brows = hair * 0.8 if "hair" in d and hair_name not in ("grey", "white", "dyed") else tone * u(0.25, 0.45)
    for name in ("upper", "dress", "coat", "pants", "skirt", "socks", "shoes", "gloves", "hat", "scarf"):
        if name not in d:
            continue
        s = SLOT[name]
        look = _garment_look(rng, name, face_z[slot == s])
        base[s], second[s], direction[s] = look["colour"], look["colour2"], look["direction"]
        kind[s] = _PATTERNS.get(look["pattern"], STRIPES)
        freq[s], duty[s], soft[s], grain[s], offset[s] = (look[k] for k in ("freq", "duty", "soft", "grain", "offset"))
        looks[name] = {k: look[k] for k in ("pattern", "colour", "colour2", "freq")}
    if "sunglasses" in d:
        base[SLOT["sunglasses"]] = np.clip(u(0.02, 0.1) + rng.normal(0, 0.03, 3), 0, 1)
        looks["sunglasses"] = {"colour": base[SLOT["sunglasses"]]}
    waves = rng.normal(size=(12, 3))
    waves *= (u(0.6, 1.6, 12) / np.linalg.norm(waves, axis=1))[:, None]
    texture = waves[6:] * 2 * np.pi * np.array([170.0] * 3 + [9.0] * 3)[:, None]
    mottle = np.where(kind == SKIN, 0.025, 0.0)
    f32 = np.float32
    materials = Materials(
        base=base.astype(f32), second=second.astype(f32), kind=kind, direction=direction.astype(f32),
        freq=freq.astype(f32), duty=duty.astype(f32), soft=soft.astype(f32), grain=grain.astype(f32),
        mottle=mottle.astype(f32), offset=offset.astype(f32), waves=waves[:6].astype(f32),
        phase=u(0, 2 * np.pi, 6).astype(f32), texture_waves=texture.astype(f32),
        texture_phase=u(0, 2 * np.pi, 6).astype(f32),
        lips=np.clip(tone * np.array([0.9, 0.68, 0.68]) * u(0.8, 1.0), 0, 1).astype(f32),
        brows=np.asarray(brows, dtype=f32), iris=(np.array(iris[iris_name]) * u(0.8, 1.2)).astype(f32),
    )  # fmt: skip
    return materials, looks
