"""Build the body surface from Anny once, and cache it per code version under the user's cache folder."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from tqdm.auto import tqdm

from densehuman.body.anny_source import load_anny_mesh
from densehuman.body.cache import BODY_SURFACE_VERSION, DEFAULT_GEODESIC_VERTICES, cache_dir, cache_path
from densehuman.body.cache import anny_version as _anny_version
from densehuman.body.charts import CHART_NAMES
from densehuman.body.geodesics import (
    nearest_table_vertex,
    subset_distance_table,
    surface_graph,
    symmetric_farthest_point_subset,
)
from densehuman.body.layout import layout_charts
from densehuman.body.segmentation import mirror_faces, segment_charts
from densehuman.body.surface import BodySurface

__all__ = [
    "BODY_SURFACE_VERSION",
    "DEFAULT_GEODESIC_VERTICES",
    "build_body_surface",
    "cache_dir",
    "cache_path",
    "load_body_surface",
]


def build_body_surface(geodesic_vertices: int = DEFAULT_GEODESIC_VERTICES, progress: bool = True) -> BodySurface:
    """Build the surface from scratch: charts, UVs, mirror maps, geodesic table. About 20 s on 2 cores (plus
    about a minute the first time Anny itself is built on a machine)."""
    if geodesic_vertices < 100:
        raise ValueError(f"geodesic_vertices must be at least 100, got {geodesic_vertices}")
    started = time.perf_counter()
    steps = tqdm(total=4, desc="body surface", disable=not progress, unit="step")
    steps.set_postfix_str("loading Anny")
    mesh = load_anny_mesh()
    steps.update()
    steps.set_postfix_str("charts")
    chart = segment_charts(mesh)
    steps.update()
    steps.set_postfix_str("unwrapping")
    corner_uv, reports = layout_charts(mesh, chart, progress=lambda name: steps.set_postfix_str(f"unwrapping {name}"))
    steps.update()
    steps.set_postfix_str("geodesics")
    skin_vertices = np.unique(mesh.faces)
    subset = symmetric_farthest_point_subset(mesh.vertices, skin_vertices, mesh.mirror, geodesic_vertices)
    graph = surface_graph(mesh.vertices, mesh.faces)
    table = subset_distance_table(graph, subset)
    vertex_table_index = nearest_table_vertex(graph, subset)
    steps.update()
    steps.close()
    uv_chart, uv_uv, uv_index = _uv_vertex_table(mesh.faces, chart, corner_uv, subset)
    metadata = {
        "version": BODY_SURFACE_VERSION,
        "anny_version": _anny_version(),
        "build_seconds": round(time.perf_counter() - started, 2),
        "charts": {CHART_NAMES[c]: {"id": c, **dataclasses.asdict(r)} for c, r in sorted(reports.items())},
    }
    return BodySurface(
        vertices=mesh.vertices.astype(np.float32),
        faces=mesh.faces,
        face_chart=chart,
        corner_uv=corner_uv.astype(np.float32),
        vertex_mirror=mesh.mirror,
        face_mirror=mirror_faces(mesh.faces, mesh.mirror),
        geodesic_vertices=subset,
        geodesic_table=table,
        vertex_table_index=vertex_table_index,
        uv_table_chart=uv_chart,
        uv_table_uv=uv_uv,
        uv_table_index=uv_index,
        metadata=metadata,
    )


def _uv_vertex_table(
    faces: np.ndarray, chart: np.ndarray, corner_uv: np.ndarray, subset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (chart, U, V) at which a subset vertex appears, like SMPL_subdiv's per-chart UV vertices."""
    position = np.full(int(faces.max()) + 1, -1, dtype=np.int64)
    position[subset] = np.arange(subset.size)
    corner_index = position[faces]  # (F, 3)
    f, k = np.nonzero(corner_index >= 0)
    rows = np.column_stack([chart[f], np.round(corner_uv[f, k] * 1e6), corner_index[f, k]])
    rows = np.unique(rows, axis=0)
    index = rows[:, 3].astype(np.int64)
    uv = (rows[:, 1:3] / 1e6).astype(np.float32)
    return rows[:, 0].astype(np.int64), uv, index


def load_body_surface(
    geodesic_vertices: int = DEFAULT_GEODESIC_VERTICES, rebuild: bool = False, progress: bool = True
) -> BodySurface:
    """The cached body surface, built and cached first if there is none for this code version."""
    path = cache_path(geodesic_vertices)
    if path.is_file() and not rebuild:
        try:
            return BodySurface.load(path)
        except ValueError:
            pass  # a damaged cache file is rebuilt below
    surface = build_body_surface(geodesic_vertices, progress=progress)
    surface.save(path)
    return surface
