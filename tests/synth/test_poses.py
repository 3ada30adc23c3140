"""Pose and shape samplers: determinism, joint limits, mirror symmetry, anatomy of the signs, hands, shapes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from densehuman.body.surface import BodySurface
from densehuman.synth.body_model import FACIAL_ACTIONS, PHENOTYPES, AnnyBody
from densehuman.synth.poses import EXPRESSIONS, POSE_FAMILIES, PoseSample, PoseSampler
from densehuman.synth.posing import HAND_SHAPES, PoseBuilder
from densehuman.synth.shapes import ShapeSampler, anny_age_to_years, years_to_anny_age
from densehuman.synth.skeleton import JOINT_LIMITS, JointSpace, Kinematics, bone_stem, mirror_rotations

_M = np.diag([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def sampler(anny_body: AnnyBody) -> PoseSampler:
    return PoseSampler.from_body(anny_body)


@pytest.fixture(scope="module")
def samples(sampler: PoseSampler) -> list[PoseSample]:
    rng = np.random.default_rng(123)
    return [sampler.sample(rng) for _ in range(500)]


def _pose(body: AnnyBody, rotations: np.ndarray, phenotypes: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(B, J, 3, 3) -> (B, J, 3) joint positions (root at the origin)."""
    b = rotations.shape[0]
    return body.pose(rotations, np.zeros((b, 3)), phenotypes or {}).bone_poses[:, :, :3, 3].astype(np.float64)


def _angles(sampler: PoseSampler, **bones: tuple[float, float, float]) -> np.ndarray:
    """A (J, 3) angle table with the given bones set (label with '_' for '.', e.g. upperarm01_L)."""
    a = np.zeros((len(sampler.space.bone_labels), 3))
    for name, value in bones.items():
        a[sampler.space.index[name.replace("_L", ".L").replace("_R", ".R")]] = value
    return a


# ---------------------------------------------------------------------------------------------------- basics
def test_same_seed_same_poses_and_shapes(sampler: PoseSampler) -> None:
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        runs.append([(sampler.sample(rng), ShapeSampler().sample(rng)) for _ in range(30)])
    for (p1, s1), (p2, s2) in zip(*runs, strict=True):
        np.testing.assert_array_equal(p1.rotations, p2.rotations)
        assert (p1.family, p1.hands, p1.expression, p1.expression_name) == (
            p2.family,
            p2.hands,
            p2.expression,
            p2.expression_name,
        )
        assert s1 == s2
    rng = np.random.default_rng(8)
    assert not np.array_equal(sampler.sample(rng).rotations, runs[0][0][0].rotations)


def test_rotations_are_proper(samples: list[PoseSample]) -> None:
    r = np.stack([s.rotations for s in samples])
    assert r.shape == (len(samples), 104, 3, 3)
    assert r.dtype == np.float64
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_every_sample_is_inside_the_joint_limits(sampler: PoseSampler, samples: list[PoseSample]) -> None:
    space = sampler.space
    rotations = np.stack([s.rotations for s in samples])
    recovered = space.to_angles(rotations)  # from the rotations, not the stored angles
    np.testing.assert_allclose(recovered, np.stack([s.angles for s in samples]), atol=1e-7)
    assert space.violation(recovered).max() < 1e-6
    # the limits bind: the samples use much of the range of the big joints, and never leave it
    for name, lo_frac in (("upperleg01.L", 0.5), ("lowerleg01.R", 0.5), ("upperarm01.L", 0.5), ("lowerarm01.R", 0.5)):
        j = space.index[name]
        span = recovered[:, j].max(0) - recovered[:, j].min(0)
        assert span.max() > lo_frac * (space.upper[j] - space.lower[j]).max(), name


def test_angles_round_trip_and_violation_detects_excess(sampler: PoseSampler) -> None:
    space = sampler.space
    rng = np.random.default_rng(0)
    a = space.clip(rng.uniform(space.lower - 30, space.upper + 30))
    np.testing.assert_allclose(space.to_angles(space.to_rotations(a)), a, atol=1e-9)
    assert space.violation(a).max() < 1e-9
    bad = a.copy()
    knee = space.index["lowerleg01.L"]
    bad[knee, 0] = JOINT_LIMITS["lowerleg01"][0][1] + 10.0  # knee flexed 10° past its limit
    assert space.violation(bad)[knee] == pytest.approx(10.0)


def test_each_family_is_reachable_and_weights_apply(sampler: PoseSampler, samples: list[PoseSample]) -> None:
    assert {s.family for s in samples} == set(POSE_FAMILIES)
    assert {h for s in samples for h in s.hands} == set(HAND_SHAPES)
    assert {s.expression_name for s in samples} == set(EXPRESSIONS)
    rng = np.random.default_rng(1)
    for family in POSE_FAMILIES:
        assert sampler.sample(rng, family).family in (family, "standing")  # standing = guard fallback
    only = PoseSampler(sampler.space.bone_labels, sampler.space.frames, family_weights={"sitting": 1.0})
    assert {only.sample(rng).family for _ in range(20)} == {"sitting"}
    with pytest.raises(ValueError, match="unknown"):
        sampler.sample(rng, "flying")
    with pytest.raises(ValueError, match="unknown"):
        PoseSampler(sampler.space.bone_labels, sampler.space.frames, family_weights={"flying": 1.0})


def test_expressions_use_known_facial_actions(samples: list[PoseSample]) -> None:
    for s in samples:
        assert set(s.expression) <= set(FACIAL_ACTIONS)
        assert all(0.0 <= v <= 1.0 for v in s.expression.values())
        assert set(s.expression) == set(EXPRESSIONS[s.expression_name])


# ---------------------------------------------------------------------------------------------------- symmetry
def test_limit_table_and_frames_are_mirror_symmetric(sampler: PoseSampler, samples: list[PoseSample]) -> None:
    space = sampler.space
    right = [j for j, n in enumerate(space.bone_labels) if n.endswith(".R")]
    np.testing.assert_allclose(space.frames[right], _M @ space.frames[space.mirror[right]] @ _M, atol=1e-12)
    central = space.mirror == np.arange(len(space.bone_labels))
    np.testing.assert_array_equal(space.lower[central, 1:], -space.upper[central, 1:])
    # a sampled pose mirrored with Anny's rule (swap L/R, (rx, ry, rz) -> (rx, -ry, -rz)) stays inside the limits
    rotations = np.stack([s.rotations for s in samples[:200]])
    mirrored = mirror_rotations(rotations, space.mirror)
    angles = space.to_angles(mirrored)
    assert space.violation(angles).max() < 1e-6
    np.testing.assert_allclose(angles, space.mirror_angles(np.stack([s.angles for s in samples[:200]])), atol=1e-7)


def test_mirrored_pose_gives_the_mirrored_mesh(
    anny_body: AnnyBody, surface: BodySurface, samples: list[PoseSample]
) -> None:
    pose = next(s for s in samples if s.family == "reaching").rotations
    both = np.stack([pose, mirror_rotations(pose, _mirror(anny_body))])
    v = anny_body.pose(both, np.zeros((2, 3)), {}).vertices.astype(np.float64)
    expected = v[0][surface.vertex_mirror] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(v[1] - expected).max() < 0.003  # metres; asymmetric only at the level of the model (anny.md §5)


def _mirror(body: AnnyBody) -> np.ndarray:
    labels = body.bone_labels
    swap = {".L": ".R", ".R": ".L"}
    return np.array([labels.index(n[:-2] + swap[n[-2:]]) if n[-2:] in swap else j for j, n in enumerate(labels)])


# ---------------------------------------------------------------------------------------------------- anatomy
def test_signs_mean_what_the_table_says(anny_body: AnnyBody, sampler: PoseSampler) -> None:
    space, ix = sampler.space, sampler.space.index
    poses = {
        "rest": _angles(sampler),
        "hip_flex": _angles(sampler, upperleg01_L=(-60.0, 0.0, 0.0)),
        "knee": _angles(sampler, lowerleg01_R=(90.0, 0.0, 0.0)),
        "abduct_arm": _angles(sampler, upperarm01_R=(0.0, 0.0, 60.0)),
        "flex_arm": _angles(sampler, upperarm01_L=(90.0, 0.0, 0.0)),
        "elbow": _angles(sampler, lowerarm01_L=(90.0, 0.0, 0.0)),
        "spine": _angles(sampler, spine03=(15.0, 0.0, 0.0), spine02=(15.0, 0.0, 0.0)),
        "root_pitch": _angles(sampler, root=(30.0, 0.0, 0.0)),
        "head_turn": _angles(sampler, head=(0.0, 20.0, 0.0), neck03=(0.0, 20.0, 0.0)),
    }
    p = dict(zip(poses, _pose(anny_body, space.to_rotations(np.stack(list(poses.values())))), strict=True))
    rest = p["rest"]
    # the body faces -Y: "forward" is -Y, "up" is +Z, the body's left is +X
    assert p["hip_flex"][ix["lowerleg01.L"], 1] < rest[ix["lowerleg01.L"], 1] - 0.2  # knee swings forward
    assert p["knee"][ix["foot.R"], 1] > rest[ix["foot.R"], 1] + 0.2  # ankle goes backward
    assert p["abduct_arm"][ix["wrist.R"], 2] > rest[ix["wrist.R"], 2] + 0.2  # right arm raised sideways...
    assert p["abduct_arm"][ix["wrist.R"], 0] < rest[ix["wrist.R"], 0]  # ...on the right (-X)
    assert p["flex_arm"][ix["lowerarm01.L"], 1] < rest[ix["lowerarm01.L"], 1] - 0.15  # elbow forward
    shoulder = ix["upperarm01.L"]
    bent = np.linalg.norm(p["elbow"][ix["wrist.L"]] - p["elbow"][shoulder])
    assert bent < np.linalg.norm(rest[ix["wrist.L"]] - rest[shoulder]) - 0.05  # elbow flexion folds the arm
    assert p["spine"][ix["head"], 1] < rest[ix["head"], 1] - 0.1  # trunk bends forward
    assert p["root_pitch"][ix["head"], 1] < rest[ix["head"], 1] - 0.2
    eye_l, eye_r = p["head_turn"][ix["eye.L"]], p["head_turn"][ix["eye.R"]]
    assert eye_l[1] > eye_r[1]  # turned toward the body's left: the left eye moves back


def test_standing_and_walking_bodies_are_upright(anny_body: AnnyBody, sampler: PoseSampler) -> None:
    rng = np.random.default_rng(3)
    poses = [sampler.sample(rng, f) for f in ("standing", "walking") for _ in range(8)]
    joints = _pose(anny_body, np.stack([s.rotations for s in poses]))
    ix = sampler.space.index
    head, pelvis = joints[:, ix["head"]], joints[:, ix["root"]]
    feet = np.minimum(joints[:, ix["foot.L"], 2], joints[:, ix["foot.R"], 2])
    assert np.all(head[:, 2] - pelvis[:, 2] > 0.5)
    assert np.all(np.hypot(*(head - pelvis)[:, :2].T) < 0.25)  # head roughly above the pelvis
    assert np.all(pelvis[:, 2] - feet > 0.6)  # legs under the body


def test_sitting_flexes_hips_and_knees(anny_body: AnnyBody, sampler: PoseSampler) -> None:
    rng = np.random.default_rng(4)
    joints = _pose(anny_body, np.stack([sampler.sample(rng, "sitting").rotations for _ in range(6)]))
    ix = sampler.space.index
    for s in "LR":
        hip, knee = joints[:, ix[f"upperleg01.{s}"]], joints[:, ix[f"lowerleg01.{s}"]]
        thigh = knee - hip
        assert np.all(-thigh[:, 1] > np.abs(thigh[:, 2]))  # thighs point forward more than down


def test_fist_closes_and_pointing_extends_the_index(anny_body: AnnyBody, sampler: PoseSampler) -> None:
    rng = np.random.default_rng(5)
    tables = []
    for shape in ("open", "fist", "pointing", "relaxed"):
        b = PoseBuilder(sampler.rig, rng)
        b.hand("L", shape)
        b.hand("R", shape)
        tables.append(sampler.space.clip(b.angles))
    joints = _pose(anny_body, sampler.space.to_rotations(np.stack(tables)))
    ix = sampler.space.index

    def tip_to_palm(k: int, finger: str, side: str) -> float:  # DIP joint to the finger's MCP knuckle base
        return float(np.linalg.norm(joints[k, ix[f"{finger}-3.{side}"]] - joints[k, ix[f"wrist.{side}"]]))

    for side in "LR":
        for finger in ("finger2", "finger3", "finger4", "finger5"):
            opened, fist = tip_to_palm(0, finger, side), tip_to_palm(1, finger, side)
            relaxed = tip_to_palm(3, finger, side)
            assert fist < opened - 0.03
            assert fist < relaxed < opened
        assert tip_to_palm(2, "finger2", side) > tip_to_palm(1, "finger2", side) + 0.03  # index out
        assert tip_to_palm(2, "finger3", side) < tip_to_palm(0, "finger3", side) - 0.03  # middle curled


# ---------------------------------------------------------------------------------------------------- guard, FK
def test_numpy_kinematics_match_anny(anny_body: AnnyBody, sampler: PoseSampler, samples: list[PoseSample]) -> None:
    assert sampler.guard is not None
    kin = Kinematics(list(anny_body.model.bone_parents), sampler.guard.kin.reference_heads)
    rotations = np.stack([s.rotations for s in samples[:4]])
    expected = _pose(anny_body, rotations)
    for r, e in zip(rotations, expected, strict=True):
        np.testing.assert_allclose(kin.world(r)[1], e, atol=1e-5)
    subset = Kinematics(
        list(anny_body.model.bone_parents), sampler.guard.kin.reference_heads, [sampler.space.index["wrist.L"]]
    )
    heads = subset.world(rotations[0])[1]
    np.testing.assert_allclose(
        heads[sampler.space.index["wrist.L"]], expected[0, sampler.space.index["wrist.L"]], atol=1e-5
    )
    assert np.isnan(heads[sampler.space.index["foot.R"]]).all()


def test_guard_rejects_a_hand_inside_the_torso(sampler: PoseSampler, samples: list[PoseSample]) -> None:
    guard = sampler.guard
    assert guard is not None
    space = sampler.space
    assert guard(space.to_rotations(_angles(sampler)))
    b = PoseBuilder(sampler.rig, np.random.default_rng(0))
    b.arm("L", (0.1, 0.3, -0.95), (-1.0, -0.15, 0.05))  # forearm aimed straight back into the belly
    assert not guard(space.to_rotations(space.clip(b.angles)))
    crossed = _angles(sampler, upperleg01_L=(0.0, 0.0, 30.0), upperleg01_R=(0.0, 0.0, 30.0))  # thighs crossing
    assert not guard(space.to_rotations(crossed))
    b = PoseBuilder(sampler.rig, np.random.default_rng(0))
    b.arm("L", (0.2, 0.5, -0.85), (-0.92, 0.3, 0.1))  # a forearm across the chest is fine...
    assert guard(space.to_rotations(space.clip(b.angles)))
    b.arm("R", (0.2, 0.5, -0.85), (-0.92, 0.3, 0.1))  # ...two at the same height and depth pass through each other
    assert not guard(space.to_rotations(space.clip(b.angles)))
    assert all(guard(s.rotations) for s in samples)
    rng = np.random.default_rng(2)
    assert all(guard(space.to_rotations(sampler.fallback_angles(rng))) for _ in range(20))


def test_sampling_is_fast(sampler: PoseSampler) -> None:
    rng = np.random.default_rng(9)
    sampler.sample(rng)
    start = time.perf_counter()
    for _ in range(200):
        sampler.sample(rng)
    assert (time.perf_counter() - start) / 200 < 5e-3


def test_joint_space_rejects_a_foreign_skeleton() -> None:
    with pytest.raises(ValueError, match="reference_orientations"):
        JointSpace(["root", "a"], np.tile(np.eye(3), (3, 1, 1)))
    assert bone_stem("upperarm01.L") == "upperarm01"
    assert bone_stem("spine01") == "spine01"


# ---------------------------------------------------------------------------------------------------- shapes
def test_shapes_cover_children_to_elders_within_valid_ranges() -> None:
    rng = np.random.default_rng(11)
    shapes = [ShapeSampler().sample(rng) for _ in range(400)]
    ages = np.array([s.age_years for s in shapes])
    assert ages.min() < 7.0
    assert ages.max() > 75.0
    assert np.mean(ages < 12) > 0.05
    assert np.mean(ages > 65) > 0.1
    assert {s.sex for s in shapes} == {"male", "female"}
    for s in shapes:
        assert tuple(s.phenotypes) == PHENOTYPES
        assert all(0.0 <= v <= 1.0 for v in s.phenotypes.values())
        assert s.phenotypes["age"] == pytest.approx(float(years_to_anny_age(s.age_years)))
        assert (s.phenotypes["gender"] >= 0.5) if s.sex == "female" else (s.phenotypes["gender"] <= 0.5)
    for key in ("weight", "muscle", "height", "proportions"):
        values = np.array([s.phenotypes[key] for s in shapes])
        assert values.std() > 0.05, key
    years = np.array([0.0, 1.0, 4.0, 6.0, 30.0, 80.0])
    np.testing.assert_allclose(anny_age_to_years(years_to_anny_age(years)), years)
    assert years_to_anny_age(11.0) == pytest.approx(0.415)  # anchors of Anny's calibration (anny.md §2)
    assert anny_age_to_years(0.83) == pytest.approx(64.0)
    with pytest.raises(ValueError, match="age band"):
        ShapeSampler(age_bands=((20.0, 10.0, 1.0),))


def test_children_are_smaller_than_adults(anny_body: AnnyBody) -> None:
    rng = np.random.default_rng(12)
    child = ShapeSampler(age_bands=((5.0, 6.0, 1.0),)).sample(rng)
    adult = ShapeSampler(age_bands=((25.0, 35.0, 1.0),)).sample(rng)
    phen = {k: np.array([child.phenotypes[k], adult.phenotypes[k]]) for k in PHENOTYPES}
    v = anny_body.pose(np.tile(np.eye(3), (2, 104, 1, 1)), np.zeros((2, 3)), phen).vertices
    heights = v[..., 2].max(1) - v[..., 2].min(1)
    assert 0.9 < heights[0] < 1.35
    assert 1.45 < heights[1] < 2.05
