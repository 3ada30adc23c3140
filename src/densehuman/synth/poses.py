"""Random, anatomically limited body poses for Anny: pose families, hand shapes and facial expressions.

Every pose is built as a (J, 3) table of joint angles (``densehuman.synth.skeleton``: flex, twist, abd in degrees,
left-side convention), clamped into ``JOINT_LIMITS`` and converted to Anny local-ref rotations, so every sample is
inside the limits by construction. Arms are authored by aiming the upper arm and the forearm at directions in the
torso frame (or the world frame, for arms hanging under gravity) and solving the shoulder swing/twist and the elbow
angle. A cheap joint-based interpenetration guard (hands, elbows and knees against the torso and head, hands against
the thighs, leg against leg, forearm against forearm) resamples poses that push a limb deep into the body.

Root orientation: ``rotations[0]`` tilts the pelvis relative to a body standing upright facing -Y (bending forward,
leaning back on a seat, ...); the scene adds its own yaw, position and ground contact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from densehuman.synth.body_model import FACIAL_ACTIONS, AnnyBody
from densehuman.synth.pose_families import FAMILIES
from densehuman.synth.posing import HAND_SHAPES, PoseBuilder, PoseRig, pick
from densehuman.synth.skeleton import JointSpace, Kinematics

POSE_FAMILIES: tuple[str, ...] = (
    "standing",
    "walking",
    "running",
    "sitting",
    "reaching",
    "bending",
    "arms_crossed",
    "squatting",
    "kneeling",
    "gesturing",
)
DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {
    "standing": 0.2,
    "walking": 0.14,
    "running": 0.05,
    "sitting": 0.15,
    "reaching": 0.1,
    "bending": 0.08,
    "arms_crossed": 0.1,
    "squatting": 0.05,
    "kneeling": 0.05,
    "gesturing": 0.08,
}
DEFAULT_HAND_WEIGHTS: dict[str, float] = {"open": 0.25, "relaxed": 0.5, "fist": 0.15, "pointing": 0.1}

# Facial expressions: name -> {facial action: (lo, hi)} sampled uniformly (values in [0, 1]).
EXPRESSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": (0.4, 1.0), "mouthSmileRight": (0.4, 1.0)},
    "laugh": {"mouthSmileLeft": (0.5, 1.0), "mouthSmileRight": (0.5, 1.0), "jawOpen": (0.3, 0.7)},
    "open_mouth": {"jawOpen": (0.3, 1.0)},
    "surprise": {"jawOpen": (0.2, 0.6), "browInnerUp": (0.5, 1.0)},
    "frown": {
        "mouthFrownLeft": (0.4, 1.0),
        "mouthFrownRight": (0.4, 1.0),
        "browDownLeft": (0.3, 0.8),
        "browDownRight": (0.3, 0.8),
    },
    "pucker": {"mouthPucker": (0.5, 1.0)},
    "blink": {"eyeBlinkLeft": (0.8, 1.0), "eyeBlinkRight": (0.8, 1.0)},
    "wink_left": {"eyeBlinkLeft": (0.9, 1.0), "mouthSmileLeft": (0.2, 0.6), "mouthSmileRight": (0.1, 0.4)},
    "wink_right": {"eyeBlinkRight": (0.9, 1.0), "mouthSmileLeft": (0.1, 0.4), "mouthSmileRight": (0.2, 0.6)},
}
DEFAULT_EXPRESSION_WEIGHTS: dict[str, float] = {
    "neutral": 0.35,
    "smile": 0.2,
    "laugh": 0.07,
    "open_mouth": 0.07,
    "surprise": 0.07,
    "frown": 0.07,
    "pucker": 0.05,
    "blink": 0.06,
    "wink_left": 0.03,
    "wink_right": 0.03,
}

SIDES = ("L", "R")
if tuple(FAMILIES) != POSE_FAMILIES:
    raise ImportError("pose_families.FAMILIES and POSE_FAMILIES disagree")
if any(set(v) - set(FACIAL_ACTIONS) for v in EXPRESSIONS.values()):
    raise ImportError("EXPRESSIONS uses facial actions outside body_model.FACIAL_ACTIONS")


@dataclass(frozen=True)
class PoseSample:
    """One sampled pose. ``rotations``: (J, 3, 3) float64 Anny local-ref rotations (see module doc for the root)."""

    rotations: np.ndarray
    angles: np.ndarray  # (J, 3) float64 joint angles in degrees (skeleton.JointSpace convention)
    family: str
    hands: tuple[str, str]  # (left, right) hand shape, from HAND_SHAPES
    expression: dict[str, float]  # facial action -> value in [0, 1], a subset of FACIAL_ACTIONS
    expression_name: str  # key of EXPRESSIONS


def _weights(
    names: Sequence[str], given: Mapping[str, float] | None, default: Mapping[str, float]
) -> tuple[float, ...]:
    table = dict(default if given is None else given)
    unknown = set(table) - set(names)
    if unknown:
        raise ValueError(f"unknown names {sorted(unknown)}; known: {tuple(names)}")
    w = np.array([float(table.get(n, 0.0)) for n in names])
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {table}")
    return tuple(float(x) for x in w / w.sum())


# Interpenetration guard volumes, from the default body at rest (identity pose, root at the origin), shrunk to about
# 80 % so that only limbs pushed deep into the body are rejected. Torso: elliptic cylinders attached to a bone,
# (bone, z_lo, z_hi, centre x, centre y, half width x, half depth y) in rest coordinates (metres).
_TORSO = (
    ("root", -0.12, 0.06, 0.0, -0.005, 0.11, 0.085),
    ("spine03", 0.06, 0.25, 0.0, -0.03, 0.105, 0.072),
    ("spine01", 0.25, 0.47, 0.0, -0.028, 0.12, 0.086),
)
_HEAD_CENTRE, _HEAD_RADIUS = np.array([0.0, -0.045, 0.65]), 0.075
_THIGH_RADIUS = 0.06  # hands against the thigh axis (from 30 % below the hip joint to the knee)
_LEG_GAP = 0.07  # minimum distance between the axes of the two legs (thighs and shins)
_FOREARM_GAP = 0.05  # minimum distance between a forearm axis (elbow -> wrist) and the other forearm or hand axis
_HAND_GAP = 0.025  # minimum distance between a middle fingertip joint and the other hand's axis (hands may touch)
_ARM_POINTS = ("lowerarm01", "lowerarm02", "wrist", "finger3-1", "finger3-3", "finger1-3")


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of (N, 3) points to the segments (N or 1, 3) a -> b."""
    ab = b - a
    t = np.clip(np.sum((points - a) * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - a - t[..., None] * ab, axis=-1)


class InterpenetrationGuard:
    """Cheap joint-based test for gross self-interpenetration of a pose (default body proportions).

    Rejects a pose if an elbow, forearm, wrist, hand or thumb joint lies deep inside the torso, the head or a thigh,
    if a knee lies inside the torso, or if the two legs, forearms or hands come closer than ``_LEG_GAP``,
    ``_FOREARM_GAP`` or ``_HAND_GAP`` (axis to axis). It checks joint positions only (no mesh), so it catches wrong
    signs and limbs through the body, not skin grazing; bodies much wider than the default one can still touch.
    """

    def __init__(self, space: JointSpace, parents: Sequence[int], reference_heads: np.ndarray) -> None:
        ix = space.index
        self.arm_points = np.array([ix[f"{p}.{s}"] for s in SIDES for p in _ARM_POINTS])
        self.points = np.concatenate([self.arm_points, [ix["lowerleg01.L"], ix["lowerleg01.R"]]])
        self.torso_bones = np.array([ix[b] for b, *_ in _TORSO])
        self.torso = np.array([rest for _, *rest in _TORSO]).T[:, :, None]  # (6, volumes, 1)
        self.head = ix["head"]
        self.legs = np.array([[ix[f"{b}.{s}"] for b in ("upperleg01", "lowerleg01", "foot")] for s in SIDES])
        needed = [*self.points, *self.torso_bones, self.head, *self.legs.ravel()]
        self.kin = Kinematics(parents, reference_heads, needed)
        self.t = np.linspace(0.0, 1.0, 5)[:, None]
        self.forearm = np.array([[ix[f"{p}.{s}"] for p in ("lowerarm01", "wrist", "finger3-3")] for s in SIDES])

    def __call__(self, rotations: np.ndarray) -> bool:
        """True if the (J, 3, 3) local-ref pose passes."""
        g, heads = self.kin.world(rotations)
        q = self.kin.reference_heads
        pts = heads[self.points]
        tb = self.torso_bones
        local = np.einsum("vni,vij->vnj", pts[None] - heads[tb][:, None], g[tb]) + q[tb][:, None]
        z0, z1, cx, cy, ax, ay = self.torso
        inside = (local[..., 2] > z0) & (local[..., 2] < z1)
        inside &= ((local[..., 0] - cx) / ax) ** 2 + ((local[..., 1] - cy) / ay) ** 2 < 1.0
        if inside.any():
            return False
        arm = pts[: len(self.arm_points)]
        local_head = (arm - heads[self.head]) @ g[self.head] + q[self.head]
        if np.any(np.sum((local_head - _HEAD_CENTRE) ** 2, axis=1) < _HEAD_RADIUS**2):
            return False
        hip, knee, ankle = heads[self.legs[:, 0]], heads[self.legs[:, 1]], heads[self.legs[:, 2]]  # (2, 3) each
        thigh_top = hip + 0.3 * (knee - hip)
        if np.any(_segment_distance(arm[None], thigh_top[:, None], knee[:, None]) < _THIGH_RADIUS):
            return False
        samples = np.concatenate(  # (2, 10, 3): points along each leg's thigh and shin axes
            [
                thigh_top[:, None] + self.t * (knee - thigh_top)[:, None],
                knee[:, None] + self.t * (ankle - knee)[:, None],
            ],
            axis=1,
        )
        seg_a = np.stack([thigh_top[::-1], knee[::-1]], axis=1)[:, :, None]  # (2 legs, 2 segments, 1, 3), other leg
        seg_b = np.stack([knee[::-1], ankle[::-1]], axis=1)[:, :, None]
        if np.any(_segment_distance(samples[:, None], seg_a, seg_b) < _LEG_GAP):
            return False
        elbow, wrist, tip = heads[self.forearm[:, 0]], heads[self.forearm[:, 1]], heads[self.forearm[:, 2]]
        fore = elbow[:, None] + self.t * (wrist - elbow)[:, None]  # (2, 5, 3) along each forearm
        if np.any(_segment_distance(fore, elbow[::-1, None], wrist[::-1, None]) < _FOREARM_GAP):
            return False
        if np.any(_segment_distance(fore, wrist[::-1, None], tip[::-1, None]) < _FOREARM_GAP):
            return False  # a hand through the other forearm
        return not np.any(_segment_distance(tip, wrist[::-1], tip[::-1]) < _HAND_GAP)


class PoseSampler:
    """Draws ``PoseSample``s: a family (by ``family_weights``), a hand shape per hand, an expression.

    ``bone_labels`` and ``reference_orientations`` (``model.reference_bone_orientations``, (J, 3, 3)) define the
    angle parameterization; ``parents`` and ``reference_heads`` (the identity pose's bone heads, root at the origin)
    enable the interpenetration guard, which resamples a rejected pose up to ``max_tries`` times and then falls back
    to a plain standing pose. ``PoseSampler.from_body(body)`` fills all four from an ``AnnyBody``.
    """

    def __init__(
        self,
        bone_labels: Sequence[str],
        reference_orientations: np.ndarray,
        *,
        parents: Sequence[int] | None = None,
        reference_heads: np.ndarray | None = None,
        family_weights: Mapping[str, float] | None = None,
        hand_weights: Mapping[str, float] | None = None,
        expression_weights: Mapping[str, float] | None = None,
        max_tries: int = 10,
    ) -> None:
        self.space = JointSpace(bone_labels, reference_orientations)
        self.rig = PoseRig(self.space)
        self.family_p = _weights(POSE_FAMILIES, family_weights, DEFAULT_FAMILY_WEIGHTS)
        self.hand_p = _weights(HAND_SHAPES, hand_weights, DEFAULT_HAND_WEIGHTS)
        self.expression_names = tuple(EXPRESSIONS)
        self.expression_p = _weights(self.expression_names, expression_weights, DEFAULT_EXPRESSION_WEIGHTS)
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.max_tries = max_tries
        self.guard: InterpenetrationGuard | None = None
        if (parents is None) != (reference_heads is None):
            raise ValueError("give both parents and reference_heads (for the interpenetration guard) or neither")
        if parents is not None and reference_heads is not None:
            self.guard = InterpenetrationGuard(self.space, parents, reference_heads)

    @classmethod
    def from_body(cls, body: AnnyBody, **kwargs: Any) -> PoseSampler:
        """Sampler for a ``densehuman.synth.body_model.AnnyBody`` (guard on, default-shape proportions)."""
        eye = np.tile(np.eye(3), (1, body.bone_count, 1, 1))
        heads = body.pose(eye, np.zeros((1, 3)), {}).bone_poses[0, :, :3, 3].astype(np.float64)
        return cls(
            body.bone_labels,
            body.model.reference_bone_orientations.detach().cpu().numpy(),
            parents=list(body.model.bone_parents),
            reference_heads=heads,
            **kwargs,
        )

    def sample(self, rng: np.random.Generator, family: str | None = None) -> PoseSample:
        """One pose; ``family`` forces a family instead of drawing one."""
        if family is None:
            family = POSE_FAMILIES[pick(rng, self.family_p)]
        elif family not in FAMILIES:
            raise ValueError(f"unknown pose family {family!r}; known: {POSE_FAMILIES}")
        for _ in range(self.max_tries):
            b = PoseBuilder(self.rig, rng)
            hands = self._hands(b, FAMILIES[family](b))
            angles = self.space.clip(b.angles)
            rotations = self.space.to_rotations(angles)
            if self.guard is None or self.guard(rotations):
                break
        else:  # all tries rejected (rare): a plain standing pose, which the guard accepts whatever the hands
            family, angles = "standing", self.fallback_angles(rng)
            hands = ("relaxed", "relaxed")
            rotations = self.space.to_rotations(angles)
        name = self.expression_names[pick(rng, self.expression_p)]
        expression = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in EXPRESSIONS[name].items()}
        return PoseSample(rotations, angles, family, hands, expression, name)

    def fallback_angles(self, rng: np.random.Generator) -> np.ndarray:
        """Upright, arms hanging, relaxed hands, head turned a little: the pose used when every try is rejected."""
        b = PoseBuilder(self.rig, rng)
        for s in SIDES:
            b.arm(s, (0.25, 0.03, -1.0), elbow=-30.0, twist=10.0)
            b.hand(s, "relaxed")
        b.head(b.u(-10, 15), b.u(-30, 30), 0.0)
        return self.space.clip(b.angles)

    def _hands(self, b: PoseBuilder, forced: Mapping[str, str]) -> tuple[str, str]:
        shapes = []
        for s in SIDES:
            shape = forced.get(s) or HAND_SHAPES[b.pick(self.hand_p)]
            b.wrist(s, b.n(10.0), b.n(6.0))
            b.hand(s, shape)
            shapes.append(shape)
        return shapes[0], shapes[1]
