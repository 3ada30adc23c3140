"""``BodySurface``: the charted human body surface that data, losses, flips and evaluation all share."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from densehuman import atomic
from densehuman.body.charts import FINE_TO_COARSE, NUM_CHARTS, POINT_LABEL_SYMMETRIES
from densehuman.body.geodesics import lookup_distance


@dataclass(frozen=True)
class SurfacePoints:
    """Points on the surface as a face and barycentric weights of its three corners."""

    face: np.ndarray  # (P,) int64
    bary: np.ndarray  # (P, 3) float64, non-negative, rows sum to 1


@dataclass(frozen=True, eq=False)
class BodySurface:
    """The human body surface cut into DensePose's 24 charts, each with U, V in [0, 1].

    Vertex indices are those of the Anny model (``anny.Anny()``), so a posed Anny mesh can be labelled with
    ``faces``, ``face_chart`` and ``corner_uv`` directly. Distances are in metres of the rest-pose default body.
    """

    vertices: np.ndarray  # (V, 3) float32, rest pose
    faces: np.ndarray  # (F, 3) int64, the skin triangles, outward winding
    face_chart: np.ndarray  # (F,) int64 in 1..24
    corner_uv: np.ndarray  # (F, 3, 2) float32, (U, V) of each face corner in its chart
    vertex_mirror: np.ndarray  # (V,) int64, the vertex's mirror image under x -> -x
    face_mirror: np.ndarray  # (F,) int64, the face's mirror image
    geodesic_vertices: np.ndarray  # (N,) int64, the vertex subset the distance table covers
    geodesic_table: np.ndarray  # (N (N - 1) / 2,) float32, condensed geodesic distances (see geodesics.py)
    vertex_table_index: np.ndarray  # (V,) int64: geodesically nearest table vertex (-1 for non-skin vertices)
    uv_table_chart: np.ndarray  # (M,) int64: chart of each UV-space subset vertex (seam vertices repeat per chart)
    uv_table_uv: np.ndarray  # (M, 2) float32: its (U, V) in that chart
    uv_table_index: np.ndarray  # (M,) int64: its index into geodesic_vertices
    metadata: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------------- derived
    @cached_property
    def face_coarse_part(self) -> np.ndarray:
        """(F,) coarse part (1..14, as in ``dp_masks``) of every face."""
        return np.asarray(FINE_TO_COARSE)[self.face_chart]

    @cached_property
    def vertex_chart(self) -> np.ndarray:
        """(V,) one chart per vertex (the largest chart index among its faces; 0 if no skin face uses it)."""
        out = np.zeros(self.vertices.shape[0], dtype=np.int64)
        np.maximum.at(out, self.faces.ravel(), np.repeat(self.face_chart, 3))
        return out

    @cached_property
    def _chart_faces(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.face_chart == c) for c in range(NUM_CHARTS + 1)]

    @cached_property
    def _chart_trees(self) -> list[cKDTree | None]:
        centroids = self.corner_uv.mean(axis=1)
        return [None] + [cKDTree(centroids[self._chart_faces[c]]) for c in range(1, NUM_CHARTS + 1)]

    @cached_property
    def _uv_trees(self) -> list[cKDTree | None]:
        return [None] + [cKDTree(self.uv_table_uv[self.uv_table_chart == c]) for c in range(1, NUM_CHARTS + 1)]

    # ------------------------------------------------------------------------------------ chart coordinates
    def surface_points(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray, candidates: int = 16) -> SurfacePoints:
        """Surface points at chart coordinates (I, U, V); I in 1..24, U and V in [0, 1].

        A point outside the chart's UV layout (the layout does not fill the whole square) snaps to the nearest
        point of the nearest triangle.
        """
        charts = np.asarray(charts, dtype=np.int64).ravel()
        uv = np.stack([np.asarray(u, dtype=np.float64).ravel(), np.asarray(v, dtype=np.float64).ravel()], axis=1)
        if charts.shape[0] != uv.shape[0]:
            raise ValueError(f"got {charts.shape[0]} chart ids for {uv.shape[0]} (U, V) pairs")
        if charts.size and (charts.min() < 1 or charts.max() > NUM_CHARTS):
            raise ValueError(f"chart ids must be in 1..{NUM_CHARTS}, got {charts.min()}..{charts.max()}")
        face = np.zeros(charts.shape[0], dtype=np.int64)
        bary = np.zeros((charts.shape[0], 3))
        for c in np.unique(charts):
            rows = np.flatnonzero(charts == c)
            members = self._chart_faces[c]
            tree = self._chart_trees[c]
            assert tree is not None
            k = min(candidates, members.size)
            _, near = tree.query(uv[rows], k=k)
            near = near.reshape(rows.size, k)
            cand = members[near]  # (P, k)
            tri = self.corner_uv[cand].astype(np.float64)  # (P, k, 3, 2)
            weights = _barycentric(tri, uv[rows][:, None, :])  # (P, k, 3)
            best = weights.min(axis=2).argmax(axis=1)
            pick = np.arange(rows.size)
            face[rows] = cand[pick, best]
            bary[rows] = _clamp_barycentric(weights[pick, best])
        return SurfacePoints(face, bary)

    def chart_coordinates(self, points: SurfacePoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(I, U, V) of surface points."""
        uv = np.einsum("pk,pkd->pd", points.bary, self.corner_uv[points.face].astype(np.float64))
        return self.face_chart[points.face], uv[:, 0], uv[:, 1]

    def positions(self, points: SurfacePoints, vertices: np.ndarray | None = None) -> np.ndarray:
        """(P, 3) positions of surface points on the rest body, or on ``vertices`` (a posed mesh) if given."""
        verts = self.vertices if vertices is None else vertices
        return np.einsum("pk,pkd->pd", points.bary, verts[self.faces[points.face]].astype(np.float64))

    def nearest_vertex(self, points: SurfacePoints) -> np.ndarray:
        """(P,) the face corner with the largest barycentric weight."""
        return self.faces[points.face, points.bary.argmax(axis=1)]

    # ------------------------------------------------------------------------------------------ geodesics
    def geodesic_distance(self, a: SurfacePoints, b: SurfacePoints) -> np.ndarray:
        """Geodesic distance in metres between surface points a[k] and b[k], through their nearest table vertices."""
        ia = self.vertex_table_index[self.nearest_vertex(a)]
        ib = self.vertex_table_index[self.nearest_vertex(b)]
        return lookup_distance(self.geodesic_table, ia, ib)

    def closest_table_vertex(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Index into ``geodesic_vertices`` of the UV-nearest table vertex of the same chart, per point.

        This is DensePose's evaluation lookup (``findAllClosestVertsUV``); chart 0 (background) gives -1.
        """
        charts = np.asarray(charts, dtype=np.int64).ravel()
        uv = np.stack([np.asarray(u, dtype=np.float64).ravel(), np.asarray(v, dtype=np.float64).ravel()], axis=1)
        out = np.full(charts.shape[0], -1, dtype=np.int64)
        for c in np.unique(charts[charts > 0]):
            rows = np.flatnonzero(charts == c)
            tree = self._uv_trees[c]
            assert tree is not None
            _, near = tree.query(uv[rows])
            out[rows] = self.uv_table_index[self.uv_table_chart == c][near]
        return out

    def table_distance(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distances between table vertices i and j (indices into ``geodesic_vertices``)."""
        return lookup_distance(self.geodesic_table, i, j)

    # --------------------------------------------------------------------------------------------- flips
    def flip_chart_coordinates(
        self, charts: np.ndarray, u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(I, U, V) of the mirror-image point: what a horizontal image flip does to a label.

        Right charts are laid out as mirror images of left ones (and the torso charts symmetric), so the map
        from a chart onto its mirror chart is (u, v) -> (1 - u, v).
        """
        charts = np.asarray(charts, dtype=np.int64)
        return np.asarray(POINT_LABEL_SYMMETRIES)[charts], 1.0 - np.asarray(u), np.asarray(v)

    def mirror_points(self, points: SurfacePoints) -> SurfacePoints:
        """The mirror images (x -> -x on the rest body) of surface points, found through the mesh's mirror map."""
        face = self.face_mirror[points.face]
        corners = self.vertex_mirror[self.faces[points.face]]  # (P, 3) mirror of each original corner
        position = (self.faces[face][:, None, :] == corners[:, :, None]).argmax(axis=2)  # where it sits in face
        bary = np.zeros_like(points.bary)
        np.put_along_axis(bary, position, points.bary, axis=1)
        return SurfacePoints(face, bary)

    def uv_symmetry_transforms(self, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The analogue of DensePose's ``UV_symmetry_transforms.mat``: (24, size, size) U and V lookup tables.

        For a point on chart i (1-based) the flipped coordinates are ``U_t[i - 1, v_loc, u_loc]`` and
        ``V_t[i - 1, v_loc, u_loc]`` with ``u_loc = int(U * (size - 1))``, ``v_loc = int(V * (size - 1))``.
        """
        grid = np.arange(size, dtype=np.float32) / (size - 1)
        vv, uu = np.meshgrid(grid, grid, indexing="ij")
        u_t = np.broadcast_to(1.0 - uu, (NUM_CHARTS, size, size)).copy()
        v_t = np.broadcast_to(vv, (NUM_CHARTS, size, size)).copy()
        return u_t, v_t

    # ------------------------------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to ``path`` (.npz) atomically: a temporary file in the same folder, then a rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metadata"}
        arrays["metadata_json"] = np.frombuffer(json.dumps(self.metadata).encode(), dtype=np.uint8)
        with atomic.replacing(path) as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BodySurface:
        """Read a surface written by ``save``; a clear error names the file if it is missing or damaged."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no body surface file there")
        names = [f.name for f in fields(cls) if f.name != "metadata"]
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [n for n in [*names, "metadata_json"] if n not in data.files]
                if missing:
                    raise ValueError(f"{path}: not a body surface file (missing {', '.join(missing)})")
                arrays = {n: data[n] for n in names}
                metadata = json.loads(data["metadata_json"].tobytes().decode())
        except (OSError, EOFError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read body surface ({err})") from err
        except ValueError as err:
            if str(path) in str(err):
                raise
            raise ValueError(f"{path}: cannot read body surface ({err})") from err
        return cls(**arrays, metadata=metadata)


def _barycentric(tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentric weights of 2D points p (..., 2) in triangles tri (..., 3, 2)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    d20 = (v2 * v0).sum(-1)
    d21 = (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    return np.stack([1.0 - w1 - w2, w1, w2], axis=-1)


def _clamp_barycentric(weights: np.ndarray) -> np.ndarray:
    clipped = np.clip(weights, 0.0, None)
    return clipped / clipped.sum(axis=1, keepdims=True)
