"""Per-triangle DensePose labels for the whole Anny mesh, including the parts that are not charted skin.

The body surface charts only the skin. The rendered mesh also has eyeballs, a tongue and the eye and mouth cavities;
they fill the skin's openings and would otherwise show as holes. Each of those triangles takes the chart and the
(U, V) of the nearest skin point, so every rendered pixel of a person carries a valid (I, U, V).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from densehuman.body.charts import FINE_TO_COARSE
from densehuman.body.surface import BodySurface


@dataclass(frozen=True)
class LabelledMesh:
    faces: np.ndarray  # (F, 3) int64, all triangles of the Anny model
    face_chart: np.ndarray  # (F,) int64 in 1..24
    face_coarse: np.ndarray  # (F,) int64 in 1..14
    corner_uv: np.ndarray  # (F, 3, 2) float32
    is_skin: np.ndarray  # (F,) bool: the triangle belongs to the charted skin
    skin_index: np.ndarray  # (F,) int64 index into BodySurface.faces, -1 where not skin


def label_mesh(surface: BodySurface, faces: np.ndarray) -> LabelledMesh:
    """Label every triangle of ``faces`` (the full model, a superset of ``surface.faces``)."""
    key_all = _face_keys(faces)
    key_skin = _face_keys(surface.faces)
    order = np.argsort(key_skin)
    pos = np.searchsorted(key_skin[order], key_all)
    pos = np.clip(pos, 0, len(order) - 1)
    found = key_skin[order][pos] == key_all
    skin_index = np.where(found, order[pos], -1)
    if int(found.sum()) != surface.faces.shape[0]:
        raise ValueError("the body surface's faces are not a subset of the model's faces (different Anny version?)")
    chart = np.zeros(faces.shape[0], dtype=np.int64)
    uv = np.zeros((faces.shape[0], 3, 2), dtype=np.float32)
    chart[found] = surface.face_chart[skin_index[found]]
    uv[found] = surface.corner_uv[skin_index[found]]
    # Non-skin triangles: copy the label at the centroid of the nearest skin triangle.
    rest = surface.vertices.astype(np.float64)
    skin_centroid = rest[surface.faces].mean(axis=1)
    other = np.flatnonzero(~found)
    if other.size:
        _, nearest = cKDTree(skin_centroid).query(rest[faces[other]].mean(axis=1))
        chart[other] = surface.face_chart[nearest]
        uv[other] = surface.corner_uv[nearest].mean(axis=1, keepdims=True)
    return LabelledMesh(
        faces=faces,
        face_chart=chart,
        face_coarse=np.asarray(FINE_TO_COARSE)[chart],
        corner_uv=uv,
        is_skin=found,
        skin_index=skin_index,
    )


def _face_keys(faces: np.ndarray) -> np.ndarray:
    """An order-independent int64 key per triangle."""
    s = np.sort(faces, axis=1).astype(np.int64)
    return (s[:, 0] << 40) | (s[:, 1] << 20) | s[:, 2]
