"""Pose families: each fills a ``PoseBuilder`` with a base pose plus random variation.

A family function returns the hand shapes it imposes ({side: shape}); the sampler draws the other hands. Angles
are in degrees; arm directions are (lateral, forward, up) in the torso frame of the left arm (posing.py), and
``world=True`` aims in the world frame (arms hanging under gravity while the trunk bends).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from densehuman.synth.posing import PoseBuilder, direction

SIDES = ("L", "R")
Family = Callable[[PoseBuilder], dict[str, str]]


def _other(side: str) -> str:
    return "R" if side == "L" else "L"


def _side(b: PoseBuilder) -> str:
    return SIDES[int(b.rng.random() < 0.5)]


# ------------------------------------------------------------------------------------------------- arm gestures
def arm_hang(b: PoseBuilder, side: str, world: bool = False) -> None:
    """Arm hanging beside the body, elbow slightly bent."""
    b.arm(side, b.jitter((0.22, 0.03, -1.0), 5), world=world, elbow=b.u(-38, 0), twist=b.u(-10, 30))


def arm_on_hip(b: PoseBuilder, side: str) -> None:
    b.arm(side, b.jitter((0.7, -0.2, -0.65), 5), b.jitter((-0.4, 0.2, -0.9), 5), pronation=b.u(-10, 20))


def arms_front(b: PoseBuilder) -> None:
    """Hands together in front of the belly."""
    fore = (-0.5, 0.85, b.u(-0.3, 0.1))
    for s in SIDES:
        b.arm(s, b.jitter((0.1, 0.35, -0.93), 4), b.jitter(fore, 4), pronation=b.u(-30, 10))


def arms_hold(b: PoseBuilder) -> None:
    """Both forearms forward, hands in front of the chest (holding a phone, a cup, a book)."""
    fore = (-0.35, 0.85, b.u(-0.1, 0.45))
    for s in SIDES:
        b.arm(s, b.jitter((0.1, 0.3, -0.95), 4), b.jitter(fore, 6), pronation=b.u(-60, 0))


def arm_to_face(b: PoseBuilder, side: str) -> None:
    """Hand at the chin, cheek or ear (thinking, phoning)."""
    b.arm(side, b.jitter((0.2, 0.5, -0.8), 8), b.jitter((-0.35, 0.25, 0.9), 8), pronation=b.u(-40, 20))
    b.wrist(side, b.u(-30, 10), b.u(-10, 10))


def arm_cross(b: PoseBuilder, side: str, top: bool, low: bool = False) -> None:
    """Forearm across the chest (or the belly if ``low``); the ``top`` arm lies in front of and above the other."""
    drop = 0.4 if low else 0.0
    if top:
        b.arm(side, b.jitter((0.12, 0.7, -0.7), 3), b.jitter((-0.88, 0.45, 0.45 - drop), 3), pronation=b.u(-10, 20))
    else:
        b.arm(side, b.jitter((0.2, 0.4, -0.9), 3), b.jitter((-0.92, 0.3, -0.02 - drop), 3), pronation=b.u(0, 30))


def arms_on_lap(b: PoseBuilder, side: str) -> None:
    """Hand resting on the thigh of a seated / kneeling body (world frame: the thigh is about level)."""
    b.arm(side, b.jitter((0.2, 0.4, -0.9), 5), b.jitter((b.u(-0.2, 0.05), 0.95, -0.2), 5), world=True)


def arm_reach(b: PoseBuilder, side: str, target: np.ndarray, world: bool = False) -> None:
    """Nearly straight arm pointing along ``target``."""
    elevation = float(np.degrees(np.arcsin(np.clip(target[2], -1.0, 1.0))))
    if elevation > 30:  # the shoulder girdle rises with the arm (scapulohumeral rhythm)
        b.clavicles(0.0, (elevation - 30) * b.u(0.15, 0.3), side)
    b.arm(side, target, world=world, elbow=b.u(-38, -20), twist=b.u(-30, 30), pronation=b.u(-40, 20))


# ------------------------------------------------------------------------------------------------- legs
def stand_legs(b: PoseBuilder) -> None:
    """Upright legs: weight on one leg with the other relaxed, or on both with the feet apart."""
    if b.rng.random() < 0.5:
        w = _side(b)
        b.leg(w, b.u(-3, 3), b.u(0, 5), hip_abd=b.u(-6, 0), hip_twist=b.u(-10, 5))
        r = _other(w)
        b.leg(r, b.u(0, 15), b.u(5, 25), hip_abd=b.u(-3, 7), hip_twist=b.u(-15, 5))
        b.flat_foot(w)
        b.flat_foot(r, b.u(5, 20))
    else:
        width = b.u(-6, 2)
        for s in SIDES:
            b.leg(s, b.u(-3, 5), b.u(0, 8), hip_abd=width + b.n(1.5), hip_twist=b.u(-12, 5))
            b.flat_foot(s)


def _standing_arms(b: PoseBuilder) -> dict[str, str]:
    mode = b.pick([0.45, 0.25, 0.13, 0.1, 0.07])
    if mode == 0:
        for s in SIDES:
            arm_hang(b, s)
    elif mode == 1:
        for s in SIDES:
            pick = b.pick([0.5, 0.3, 0.2])
            (arm_hang, arm_on_hip, arm_to_face)[pick](b, s)
    elif mode == 2:
        arms_front(b)
    elif mode == 3:
        arms_hold(b)
    else:
        for s in SIDES:
            arm_on_hip(b, s)
    return {}


# ------------------------------------------------------------------------------------------------- families
def standing(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(-4, 5), b.n(8.0), b.n(2.0))
    b.spine(b.u(-8, 12), b.n(8.0), b.n(4.0))
    stand_legs(b)
    b.random_head()
    return _standing_arms(b)


def _gait(b: PoseBuilder, hip_amp: float, knee_swing: float, knee_stance: float, arm_amp: float, elbow: float) -> None:
    """One phase of a walking/running cycle: legs in antiphase, each arm swinging against its leg."""
    phase = b.u(0.0, 2.0 * np.pi)
    b.root(0.0, 6.0 * np.sin(phase), 0.0)
    b.spine(0.0, -6.0 * np.sin(phase), 0.0)
    for k, s in enumerate(SIDES):
        ph = phase + k * np.pi
        hip = hip_amp * (np.sin(ph) + 0.25)
        swing = max(0.0, np.cos(ph - 0.3))
        knee = knee_stance * max(0.0, -np.cos(ph)) + knee_swing * swing**2 + 3.0
        b.leg(s, hip, knee, hip_abd=b.u(0, 4), hip_twist=b.u(-8, 4))
        if np.cos(ph) < 0.0:  # stance: the hip extends, the sole is on the ground
            b.flat_foot(s, 15.0 * max(0.0, -np.sin(ph)) ** 2)  # heel rises before toe-off
        else:  # swing: the foot follows the shin, slightly dorsiflexed
            b.add("foot", s, b.u(-15, 5))
        arm = -arm_amp * np.sin(ph)
        upper = (0.2, np.sin(np.radians(arm)), -np.cos(np.radians(arm)))
        fore_angle = np.radians(arm + elbow + 0.4 * max(0.0, arm))
        b.arm(s, b.jitter(upper, 4), b.jitter((0.1, np.sin(fore_angle), -np.cos(fore_angle)), 4), world=True)


def walking(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(2, 8), b.n(5.0), b.n(1.5))
    b.spine(b.u(-3, 8), 0.0, b.n(2.0))
    _gait(b, b.u(15, 28), b.u(40, 60), b.u(5, 15), b.u(10, 30), b.u(10, 35))
    b.random_head(turn_sigma=15.0, flex=(-10.0, 20.0))
    return {}


def running(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(8, 16), b.n(5.0), b.n(1.5))
    b.spine(b.u(0, 10), 0.0, b.n(2.0))
    _gait(b, b.u(30, 45), b.u(70, 100), b.u(15, 35), b.u(30, 50), b.u(75, 95))
    b.random_head(turn_sigma=8.0, flex=(-20.0, 5.0))
    shape = "fist" if b.rng.random() < 0.4 else "relaxed"
    return {"L": shape, "R": shape}


def sitting(b: PoseBuilder) -> dict[str, str]:
    lean = b.u(-15, 10)
    b.root(lean, b.n(5.0), b.n(2.0))
    slouch = b.u(-5, 20)
    b.spine(slouch, b.n(8.0), b.n(3.0))
    spread = b.u(0, 15)
    for s in SIDES:
        thigh = b.u(75, 100)
        stretched = b.rng.random() < 0.15
        b.leg(
            s,
            thigh + lean,
            b.u(20, 45) if stretched else b.u(60, 110),
            hip_abd=spread + b.n(3.0),
            hip_twist=b.u(-20, 0),
        )
        if stretched:  # resting on the heel
            b.add("foot", s, b.u(-10, 20))
        else:
            b.flat_foot(s, b.n(6.0))
    b.random_head(flex=(-10.0 - 0.5 * (lean + slouch), 20.0 - 0.5 * (lean + slouch)))
    mode = b.pick([0.45, 0.2, 0.2, 0.15])
    for s in SIDES:
        if mode == 0 or (mode == 3 and s == "L"):  # hands on the lap / thighs
            arms_on_lap(b, s)
        elif mode == 1:  # forearms on (imaginary) armrests
            b.arm(s, b.jitter((0.2, -0.1, -1.0), 5), b.jitter((0.0, 1.0, 0.05), 5), pronation=b.u(-20, 20))
        elif mode == 2 and b.rng.random() < 0.5:
            arm_hang(b, s)
        else:
            arm_to_face(b, s)
    return {}


def reaching(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(-3, 10), b.n(8.0), b.n(2.0))
    both = b.rng.random() < 0.3
    side = _side(b)
    target = direction(b.u(-10, 110), b.u(-5, 85))
    tiptoe = target[2] > 0.7 and b.rng.random() < 0.4
    stand_legs(b)
    if tiptoe:
        for s in SIDES:
            b.flat_foot(s, b.u(20, 40))
    lean_fwd = max(0.0, target[1]) * (1.0 - max(0.0, target[2])) * b.u(0, 25)
    b.spine(lean_fwd, b.n(6.0) + (8.0 if side == "L" else -8.0) * target[1], b.n(4.0))
    b.random_head(turn_sigma=12.0, flex=(-25.0 * max(0.0, target[2]) - 5, 10.0))
    arm_reach(b, side, b.jitter(target, 5))
    if both:
        arm_reach(b, _other(side), b.jitter(target, 10))
    elif b.rng.random() < 0.7:
        arm_hang(b, _other(side))
    else:
        arm_on_hip(b, _other(side))
    return {side: "open" if b.rng.random() < 0.5 else "pointing"} if not both else {}


def bending(b: PoseBuilder) -> dict[str, str]:
    if b.rng.random() < 0.7:  # forward, at the hips and the spine
        pitch, knee = b.u(20, 75), b.u(0, 30)
        b.root(pitch, b.n(4.0), b.n(2.0))
        b.spine(b.u(0, 60), b.n(8.0), b.n(4.0))
        for s in SIDES:
            k = knee + b.n(3.0)
            b.leg(s, pitch + k / 2, k, hip_abd=b.u(0, 10), hip_twist=b.u(-10, 5))
            b.flat_foot(s)
        b.random_head(flex=(-40.0, 10.0))
        for s in SIDES:
            if b.rng.random() < 0.7:
                arm_hang(b, s, world=True)
            else:  # hand on the thigh / knee
                b.arm(s, b.jitter((0.1, 0.3, -0.95), 6), b.jitter((0.0, 0.25, -1.0), 6), world=True)
    else:  # sideways
        toward = _side(b)
        sign = 1.0 if toward == "R" else -1.0
        b.root(b.u(-3, 8), b.n(5.0), sign * b.u(0, 6))
        b.spine(b.u(-5, 15), b.n(6.0), sign * b.u(15, 38))
        stand_legs(b)
        b.random_head(turn_sigma=12.0)
        arm_hang(b, toward, world=True)
        up = _other(toward)
        if b.rng.random() < 0.5:
            arm_reach(b, up, direction(b.u(10, 40), b.u(60, 85)))
        else:
            arm_on_hip(b, up)
    return {}


def arms_crossed(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(-4, 4), b.n(6.0), b.n(2.0))
    b.spine(b.u(-8, 8), b.n(6.0), b.n(3.0))
    stand_legs(b)
    b.random_head()
    top = _side(b)
    if b.rng.random() < 0.75:  # both forearms across the body
        low = b.rng.random() < 0.3
        arm_cross(b, top, True, low)
        arm_cross(b, _other(top), False, low)
    else:  # one forearm across the belly, the other arm hanging
        arm_cross(b, top, True, low=True)
        arm_hang(b, _other(top))
    shape = "fist" if b.rng.random() < 0.3 else "relaxed"
    return {"L": shape, "R": shape}


def squatting(b: PoseBuilder) -> dict[str, str]:
    """Deep knee bend. The shin leans forward by the ankle dorsiflexion, the thigh closes on it, the pelvis tilts."""
    heels_up = b.rng.random() < 0.4
    knee, dorsi = b.u(100, 140), (b.u(0, 20) if heels_up else b.u(20, 33))
    pitch = float(np.clip(b.u(95, 122) + dorsi - knee, 5.0, 50.0))  # hip flexion = knee + pitch - dorsiflexion
    b.root(pitch, b.n(5.0), b.n(2.0))
    b.spine(b.u(0, 30), b.n(6.0), b.n(3.0))
    for s in SIDES:
        k = knee + b.n(4.0)
        b.leg(s, min(k + pitch - dorsi, 122.0), k, hip_abd=b.u(10, 25), hip_twist=b.u(-20, 0))
        b.flat_foot(s, b.u(15, 35) if heels_up else 0.0)
    b.random_head(flex=(-30.0, 10.0))
    for s in SIDES:
        if b.rng.random() < 0.5:  # forearm resting on the knee
            b.arm(s, b.jitter((0.35, 0.6, -0.7), 6), b.jitter((-0.3, 0.95, 0.0), 6), world=True)
        else:  # arms forward for balance
            b.arm(s, b.jitter((0.15, 0.8, -0.4), 8), b.jitter((0.0, 1.0, 0.1), 8), world=True)
    return {}


def kneeling(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(-5, 10), b.n(5.0), b.n(2.0))
    b.spine(b.u(-5, 15), b.n(6.0), b.n(3.0))
    b.random_head()
    pitch = float(b.angles[0, 0])
    if b.rng.random() < 0.5:  # on one knee
        up = _side(b)
        b.leg(up, pitch + b.u(80, 100), b.u(80, 100), hip_abd=b.u(0, 10))
        b.flat_foot(up)
        down = _other(up)
        b.leg(down, pitch + b.u(-10, 10), b.u(85, 100), hip_abd=b.u(0, 10))
        b.add("foot", down, b.u(-20, 45))  # toes tucked under .. instep on the ground
        if b.rng.random() < 0.6:  # forearm on the raised knee
            b.arm(up, b.jitter((0.3, 0.45, -0.85), 5), b.jitter((-0.25, 0.95, -0.05), 5), world=True)
        else:
            arm_hang(b, up, world=True)
        if b.rng.random() < 0.7:
            arm_hang(b, down, world=True)
        else:
            arm_on_hip(b, down)
    elif b.rng.random() < 0.4:  # sitting back on the heels
        for s in SIDES:
            b.leg(s, pitch + b.u(70, 85), b.u(135, 145), hip_abd=b.u(0, 8))
            b.add("foot", s, b.u(30, 50))  # instep on the ground
            arms_on_lap(b, s)
    else:  # upright on both knees
        for s in SIDES:
            b.leg(s, pitch + b.u(-5, 20), b.u(85, 105), hip_abd=b.u(0, 10))
            b.add("foot", s, b.u(30, 50))
        _standing_arms(b)
    return {}


def gesturing(b: PoseBuilder) -> dict[str, str]:
    b.root(b.u(-3, 5), b.n(8.0), b.n(2.0))
    b.spine(b.u(-5, 10), b.n(8.0), b.n(3.0))
    stand_legs(b)
    b.random_head()
    side = _side(b)
    other = _other(side)
    kind = b.pick([0.35, 0.3, 0.2, 0.15])
    hands: dict[str, str] = {}
    if kind == 0:  # waving
        b.arm(side, b.jitter((0.9, 0.2, 0.3), 10), b.jitter((0.15, 0.15, 1.0), 10), pronation=b.u(-20, 30))
        b.wrist(side, b.u(-20, 20), b.u(-20, 15))
        hands[side] = "open"
    elif kind == 1:  # pointing at something
        arm_reach(b, side, direction(b.u(0, 100), b.u(-20, 40)))
        hands[side] = "pointing"
    elif kind == 2:  # phone at the ear / hand to the face
        arm_to_face(b, side)
    else:  # "stop" sign: arm forward, wrist extended, palm out
        b.arm(side, direction(b.u(40, 90), b.u(-10, 20)), elbow=b.u(-38, -10), twist=b.u(-20, 20))
        b.wrist(side, b.u(-70, -40), 0.0)
        hands[side] = "open"
    if b.rng.random() < 0.7:
        arm_hang(b, other)
    else:
        arm_on_hip(b, other)
    return hands


FAMILIES: dict[str, Family] = {
    "standing": standing,
    "walking": walking,
    "running": running,
    "sitting": sitting,
    "reaching": reaching,
    "bending": bending,
    "arms_crossed": arms_crossed,
    "squatting": squatting,
    "kneeling": kneeling,
    "gesturing": gesturing,
}
