"""Anatomical joint angles and joint limits for Anny's 104-bone skeleton.

Parameterization. Every bone gets three angles ``(flex, twist, abd)`` in degrees, relative to Anny's reference pose
(the A-pose: arms about 50° below horizontal, elbows bent about 41°, everything else straight). They build the
bone's rotation in a (mirror-symmetrized) copy of its reference bone frame ``A`` (+Y along the bone):

    E = exp([flex, 0, abd]) · Ry(twist)         (a swing, then a twist about the bone; exact inverse below 180° swing)
    D_local-ref = A E Aᵀ                         (Anny's local-ref delta; for a left bone ``A`` ≈ its reference frame)

Angles are stated for the LEFT side. A right bone uses ``A_R = M A_L M`` (``M = diag(-1, 1, 1)``) and the raw angles
``(flex, -twist, -abd)``, so a pose and its mirror image (anny.md §5) have the same angle table with L/R swapped, and
one limit table serves both sides. The root uses the fixed frame X = world X, Y = world up, Z = forward (-Y world).

Axis meaning per joint (left side; the same anatomical meaning holds on the right):
  root            flex + pitches forward, twist + yaws toward the body's left, abd + leans to the body's right
  spine*, neck*,  flex + bends forward, twist + turns toward the body's left, abd + bends toward the right
  head
  clavicle,       flex + protraction (forward), abd + elevation (shrug)
  shoulder01
  upperarm01      swing of the humerus: flex + swings the arm forward (90° points it straight forward), abd + raises
                  it sideways (rest is ~40° abducted: -40° hangs it at the side, +50° is horizontal), twist + internal
                  rotation
  lowerarm01      elbow hinge: flex + flexion beyond the rest 41° bend (anatomical flexion = flex + 41°)
  lowerarm02      forearm twist bone: twist + pronation
  wrist           flex + palmar flexion, abd + radial deviation (toward the thumb); its frame is rolled to the palm
  finger2..5-1    MCP: flex + curls toward the palm, abd + spreads (index toward the thumb)
  finger2..5-2/3  PIP / DIP hinges
  finger1-1..3    thumb CMC / MCP / IP: flex + curls the thumb toward the palm, abd + moves it away from the index
  upperleg01      hip: flex - is hip flexion (thigh forward), flex + extension, abd + adduction, twist + internal
  lowerleg01      knee hinge: flex + flexion
  foot            ankle: flex + plantarflexion, abd + adduction (toes in), twist + eversion
  eye             flex + looks up, abd + looks toward the body's left
Bones not in the table (pelvis, twist helpers upperarm02/upperleg02/lowerleg02, metacarpals, toes) stay at rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_M = np.diag([-1.0, 1.0, 1.0])
_SIDE_FLIP = np.array([1.0, -1.0, -1.0])  # (flex, twist, abd) -> raw angles of a right bone

# Joint limits in degrees: bone stem -> ((flex lo, hi), (twist lo, hi), (abd lo, hi)), left-side convention,
# relative to the reference A-pose. Anatomical ranges they encode are noted after each row.
JOINT_LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "root": ((-30, 90), (-45, 45), (-20, 20)),  # pelvis: lean back 30 .. forward 90, yaw ±45, roll ±20
    "spine05": ((-8, 20), (-10, 10), (-8, 8)),  # 5 spine bones share the trunk: flex -40..100, twist ±50, side ±40
    "spine04": ((-8, 20), (-10, 10), (-8, 8)),
    "spine03": ((-8, 20), (-10, 10), (-8, 8)),
    "spine02": ((-8, 20), (-10, 10), (-8, 8)),
    "spine01": ((-8, 20), (-10, 10), (-8, 8)),
    "neck01": ((-20, 15), (-20, 20), (-12, 12)),  # neck + head: flex -80..65, rotation ±80, side bend ±48
    "neck02": ((-20, 15), (-20, 20), (-12, 12)),
    "neck03": ((-20, 15), (-20, 20), (-12, 12)),
    "head": ((-20, 20), (-20, 20), (-12, 12)),
    "eye": ((-20, 20), (0, 0), (-25, 25)),  # gaze: down / up 20, sideways 25
    "clavicle": ((-15, 20), (-10, 10), (-10, 30)),  # retraction 15 .. protraction 20, depression 10 .. elevation 30
    "shoulder01": ((-10, 10), (-5, 5), (-10, 15)),
    "upperarm01": ((-60, 170), (-80, 80), (-50, 140)),  # extension 60 .. flexion 170, abduction -10 .. 180, rot ±80
    "lowerarm01": ((-38, 104), (0, 0), (0, 0)),  # elbow hinge: anatomical flexion 3 .. 145
    "lowerarm02": ((0, 0), (-80, 80), (0, 0)),  # forearm supination 80 .. pronation 80
    "wrist": ((-70, 75), (-10, 10), (-30, 20)),  # extension 70 .. flexion 75, ulnar 30 .. radial 20 deviation
    "finger1-1": ((-20, 50), (-30, 30), (-30, 40)),  # thumb CMC
    "finger1-2": ((-10, 60), (0, 0), (-10, 10)),  # thumb MCP
    "finger1-3": ((-15, 85), (0, 0), (0, 0)),  # thumb IP
    "finger2-1": ((-25, 95), (0, 0), (-20, 20)),  # index MCP: hyperextension 25 .. flexion 95, spread ±20
    "finger3-1": ((-25, 95), (0, 0), (-20, 20)),
    "finger4-1": ((-25, 95), (0, 0), (-20, 20)),
    "finger5-1": ((-25, 95), (0, 0), (-20, 20)),
    "finger2-2": ((-5, 110), (0, 0), (0, 0)),  # PIP hinges
    "finger3-2": ((-5, 110), (0, 0), (0, 0)),
    "finger4-2": ((-5, 110), (0, 0), (0, 0)),
    "finger5-2": ((-5, 110), (0, 0), (0, 0)),
    "finger2-3": ((-5, 85), (0, 0), (0, 0)),  # DIP hinges
    "finger3-3": ((-5, 85), (0, 0), (0, 0)),
    "finger4-3": ((-5, 85), (0, 0), (0, 0)),
    "finger5-3": ((-5, 85), (0, 0), (0, 0)),
    "upperleg01": ((-125, 30), (-45, 40), (-45, 30)),  # hip flexion 125 / extension 30, abduction 45 / adduction 30
    "lowerleg01": ((-3, 145), (0, 0), (0, 0)),  # knee
    "foot": ((-35, 50), (-25, 20), (-20, 20)),  # dorsiflexion 35 / plantarflexion 50, inversion 25 / eversion 20
}
MAX_SWING_DEG = 170.0  # the swing part (flex, abd) of any bone stays below this, keeping the inverse unique


# Bones whose frame is rolled about its own axis so that its flexion axis (X) matches another bone's: the wrist's
# reference X lies ~70° off the palm's flexion axis, so the wrist borrows the middle finger's (its MCP axis).
_ROLL_TO = {"wrist": "finger3-1"}


def _rolled(frame: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``frame`` turned about its Y column so its X column is ``axis`` projected off Y (mirror-equivariant)."""
    local = frame.T @ axis
    psi = np.arctan2(-local[2], local[0])
    c, s = np.cos(psi), np.sin(psi)
    return frame @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def bone_stem(label: str) -> str:
    """'upperarm01.L' -> 'upperarm01'."""
    return label[:-2] if label.endswith((".L", ".R")) else label


def _polar(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        raise ValueError("frame symmetrization produced a reflection")
    return r


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rodrigues for (..., 3) rotation vectors in radians."""
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    small = theta < 1e-12
    k = v / np.where(small, 1.0, theta)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    return np.eye(3) + s * kmat + (1.0 - c) * (kmat @ kmat)


class JointSpace:
    """Converts between per-bone (flex, twist, abd) angles and Anny local-ref rotations, and checks the limits.

    ``bone_labels``: Anny's bone names in order; ``reference_orientations``: ``model.reference_bone_orientations``
    (J, 3, 3). Angles are (J, 3) arrays in degrees, columns (flex, twist, abd), left-side convention (module doc).
    """

    def __init__(self, bone_labels: Sequence[str], reference_orientations: np.ndarray) -> None:
        labels = tuple(bone_labels)
        ref = np.asarray(reference_orientations, dtype=np.float64)
        if ref.shape != (len(labels), 3, 3):
            raise ValueError(f"reference_orientations must be ({len(labels)}, 3, 3), got {ref.shape}")
        if labels[0] != "root":
            raise ValueError(f"bone 0 must be 'root', got {labels[0]!r}")
        self.bone_labels = labels
        self.index = {name: j for j, name in enumerate(labels)}
        self.mirror = np.array([self.index.get(_swap_side(name), j) for j, name in enumerate(labels)])
        self.side = np.array([-1.0 if name.endswith(".R") else 1.0 for name in labels])
        self.frames = np.empty_like(ref)
        for j, name in enumerate(labels):
            if name.endswith(".R"):
                continue
            k = self.mirror[j]
            self.frames[j] = _polar(0.5 * (ref[j] + _M @ ref[k] @ _M))
            target = _ROLL_TO.get(bone_stem(name))
            if target is not None:
                self.frames[j] = _rolled(self.frames[j], ref[self.index[target + name[-2:]]][:, 0])
            if k != j:
                self.frames[k] = _M @ self.frames[j] @ _M
        self.frames[0] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # columns X, up, forward
        self.lower = np.zeros((len(labels), 3))
        self.upper = np.zeros((len(labels), 3))
        for j, name in enumerate(labels):
            limits = JOINT_LIMITS.get(bone_stem(name))
            if limits is not None:
                self.lower[j] = [lo for lo, _ in limits]
                self.upper[j] = [hi for _, hi in limits]
        self._flip = np.where(self.side[:, None] < 0, _SIDE_FLIP, 1.0)

    def clip(self, angles: np.ndarray) -> np.ndarray:
        """Clamp (J, 3) angles into the box limits, then shrink any swing longer than ``MAX_SWING_DEG``."""
        out = np.clip(angles, self.lower, self.upper)
        swing = np.hypot(out[:, 0], out[:, 2])
        scale = np.minimum(1.0, MAX_SWING_DEG / np.maximum(swing, 1e-12))
        out[:, 0] *= scale
        out[:, 2] *= scale
        return out

    def violation(self, angles: np.ndarray) -> np.ndarray:
        """(..., J) largest amount (degrees) by which each bone's angles leave the limits; 0 when inside."""
        below = np.max(self.lower - angles, axis=-1)
        above = np.max(angles - self.upper, axis=-1)
        swing = np.hypot(angles[..., 0], angles[..., 2]) - MAX_SWING_DEG
        return np.maximum(np.maximum(below, above), np.maximum(swing, 0.0)).clip(min=0.0)

    def to_rotations(self, angles: np.ndarray, bones: np.ndarray | None = None) -> np.ndarray:
        """(..., J, 3) angles in degrees -> (..., J, 3, 3) local-ref rotations (or only ``bones``: (..., K, 3))."""
        frames, flip = (self.frames, self._flip) if bones is None else (self.frames[bones], self._flip[bones])
        raw = np.radians(angles) * flip
        swing = np.stack([raw[..., 0], np.zeros_like(raw[..., 0]), raw[..., 2]], axis=-1)
        c, s = np.cos(raw[..., 1]), np.sin(raw[..., 1])
        zero, one = np.zeros_like(c), np.ones_like(c)
        twist = np.stack([c, zero, s, zero, one, zero, -s, zero, c], axis=-1).reshape(*c.shape, 3, 3)
        local = _rotvec_to_matrix(swing) @ twist
        return frames @ local @ np.swapaxes(frames, -1, -2)

    def to_angles(self, rotations: np.ndarray) -> np.ndarray:
        """(..., J, 3, 3) local-ref rotations -> (..., J, 3) angles in degrees (inverse of ``to_rotations``)."""
        local = np.swapaxes(self.frames, -1, -2) @ rotations @ self.frames
        d = local[..., :, 1]  # the bone axis after the rotation, in the bone frame
        angle = np.arccos(np.clip(d[..., 1], -1.0, 1.0))
        norm = np.hypot(d[..., 0], d[..., 2])
        factor = np.where(norm > 1e-12, angle / np.maximum(norm, 1e-12), 1.0)
        swing_vec = np.stack([d[..., 2] * factor, np.zeros_like(angle), -d[..., 0] * factor], axis=-1)
        twist = np.swapaxes(_rotvec_to_matrix(swing_vec), -1, -2) @ local
        twist_angle = np.arctan2(twist[..., 0, 2], twist[..., 0, 0])
        raw = np.stack([swing_vec[..., 0], twist_angle, swing_vec[..., 2]], axis=-1)
        return np.degrees(raw) * self._flip

    def mirror_angles(self, angles: np.ndarray) -> np.ndarray:
        """Angles of the mirror-image pose (x -> -x): L/R bones swap; central bones negate twist and abd."""
        out = angles[..., self.mirror, :].copy()
        central = self.mirror == np.arange(len(self.bone_labels))
        out[..., central, 1:] *= -1.0
        return out


def mirror_rotations(rotations: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Anny's pose mirror (anny.md §5) on (..., J, 3, 3) local-ref rotations: swap L/R bones, R -> M R M."""
    return _M @ rotations[..., mirror, :, :] @ _M


def _swap_side(name: str) -> str:
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


class Kinematics:
    """Numpy forward kinematics of Anny's local-ref rotations for one fixed body (joint positions only).

    ``parents``: parent index per bone (root: -1, parents before children); ``reference_heads`` (J, 3): the bone heads
    of the identity pose with the root at the origin (``bone_poses[..., :3, 3]`` of ``AnnyBody.pose`` with identity
    rotations). Each bone's world rotation delta is ``G_c = G_p D_c`` and its head ``h_c = h_p + G_p (q_c - q_p)``.
    ``bones`` restricts the work to those bones and their ancestors; the others come out as NaN.

    The chains are composed by pointer doubling (log2(depth) batched steps instead of one step per depth level).
    """

    def __init__(self, parents: Sequence[int], reference_heads: np.ndarray, bones: Sequence[int] | None = None) -> None:
        par = np.asarray(parents, dtype=np.int64)
        heads = np.asarray(reference_heads, dtype=np.float64)
        if par[0] >= 0 or np.any(par[1:] >= np.arange(1, len(par))) or heads.shape != (len(par), 3):
            raise ValueError("parents must list the root first (-1) and parents before children; heads (J, 3)")
        needed = np.zeros(len(par), dtype=bool)
        for j in range(len(par)) if bones is None else bones:
            while j >= 0 and not needed[j]:
                needed[j] = True
                j = int(par[j])
        self.bones = np.nonzero(needed)[0]  # sorted, so parents come first and the root is position 0
        sentinel = len(self.bones)  # an identity transform after the bones, its own ancestor
        position = np.full(len(par), sentinel)
        position[self.bones] = np.arange(sentinel)
        self.ancestor = np.append(
            np.where(par[self.bones] >= 0, position[np.maximum(par[self.bones], 0)], sentinel), sentinel
        )
        depth = np.zeros(len(par), dtype=np.int64)
        for c in range(1, len(par)):
            depth[c] = depth[par[c]] + 1
        self.steps = max(1, int(np.ceil(np.log2(int(depth[self.bones].max()) + 1))))
        self.parents = par
        self.reference_heads = heads
        offsets = heads - heads[np.maximum(par, 0)]
        offsets[0] = heads[0]
        self.offsets = np.concatenate([offsets[self.bones], np.zeros((1, 3))])[..., None]

    def world(self, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(J, 3, 3) local-ref rotations -> world rotation deltas G (J, 3, 3) and joint positions (J, 3), root at 0."""
        g = np.concatenate([rotations[self.bones], np.eye(3)[None]])
        t = self.offsets.copy()
        anc = self.ancestor
        for _ in range(self.steps):  # T_i <- T_anc(i) o T_i with (A, a) o (B, b) = (A B, a + A b)
            ga = g[anc]
            t = t[anc] + ga @ t
            g = ga @ g
            anc = anc[anc]
        g_out = np.full_like(rotations, np.nan)
        heads = np.full((rotations.shape[0], 3), np.nan)
        g_out[self.bones] = g[:-1]
        heads[self.bones] = t[:-1, :, 0]
        return g_out, heads
