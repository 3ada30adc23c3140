from __future__ import annotations

import os
import pickle
import pickletools
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy.spatial.distance import cdist

from densehuman.body.surface import BodySurface
from densehuman.cli import main
from densehuman.evaluation.geodesic_data import (
    PDIST_FILE,
    SUBDIV_FILE,
    TRANSFORM_FILE,
    GeodesicEvalData,
    export_official,
    from_body_surface,
    load_eval_body,
    load_official,
)

# A 5-vertex table written out by hand: the distance of every pair (a, b), a < b, 1-based.
PAIRS = {(1, 2): 0.1, (1, 3): 0.2, (2, 3): 0.3, (1, 4): 0.4, (2, 4): 0.5, (3, 4): 0.6}
PAIRS |= {(1, 5): 0.7, (2, 5): 0.8, (3, 5): 0.9, (4, 5): 1.0}
# Condensed order: (2,1), (3,1), (3,2), (4,1), (4,2), (4,3), (5,1), ... (row by row of the strict lower triangle).
TINY_PDIST = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


def tiny(pdist: np.ndarray = TINY_PDIST) -> GeodesicEvalData:
    part_ids = np.array([1, 1, 2, 2, 2, 24])
    uv = np.array([[0.1, 0.1], [0.9, 0.9], [0.5, 0.5], [0.2, 0.8], [0.5, 0.5], [0.3, 0.3]])
    return GeodesicEvalData("tiny", part_ids, uv, np.array([1, 2, 3, 4, 3, 5]), pdist)


def write_official(folder: Path, data: GeodesicEvalData, table: bytes) -> None:
    """Official-format files as MATLAB writes them (doubles) plus a given pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    subdiv = {"U_subdiv": data.uv[None, :, 0], "V_subdiv": data.uv[None, :, 1], "Part_ID_subdiv": data.part_ids[None]}
    scipy.io.savemat(folder / SUBDIV_FILE, {k: v.astype(np.float64) for k, v in subdiv.items()})
    scipy.io.savemat(folder / TRANSFORM_FILE, {"index": data.transform[:, None].astype(np.float64)})
    (folder / PDIST_FILE).write_bytes(table)


def py2_pickle(table: np.ndarray) -> bytes:
    """What Python 2's ``cPickle.dump({"Pdist_matrix": table}, f, 2)`` writes: byte strings as (SHORT_)BINSTRING."""
    data = np.ascontiguousarray(table, dtype="<f8").tobytes()

    def short(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    shape = b"".join(b"J" + struct.pack("<i", d) for d in table.shape) + {1: b"\x85", 2: b"\x86"}[table.ndim]
    return (
        b"\x80\x02}" + short(b"Pdist_matrix") + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short(b"b") + b"\x87R(K\x01" + shape + b"cnumpy\ndtype\n" + short(b"f8") + b"K\x00K\x01\x87R(K\x03"
        + short(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<i", len(data)) + data
        + b"tbs."
    )  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DENSEHUMAN_CACHE_DIR", str(folder))
    return folder / "eval_data"


# ------------------------------------------------------------------------------------------ distances
@pytest.mark.parametrize("shape", [(10,), (10, 1)])
def test_distances_of_a_handmade_table(shape: tuple[int, ...]) -> None:
    data = tiny(TINY_PDIST.reshape(shape))
    assert data.table_size == 5
    for (a, b), d in PAIRS.items():
        got = data.distances(np.array([a, b]), np.array([b, a]))
        np.testing.assert_array_equal(got, [d, d])
    diagonal = np.arange(1, 6)
    np.testing.assert_array_equal(data.distances(diagonal, diagonal), np.zeros(5))
    assert np.isinf(data.distances(diagonal, np.zeros(5, dtype=int))).all()
    # Official-style float ids work too; ids outside the table are refused.
    np.testing.assert_array_equal(data.distances(np.array([5.0]), np.array([4.0])), [1.0])
    with pytest.raises(ValueError, match="gt vertices"):
        data.distances(np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="dt vertices"):
        data.distances(np.array([1]), np.array([6]))


def test_distance_index_does_not_overflow_int32(tmp_path: Path) -> None:
    """n = 50000 > 46341, where i (i - 1) passes 2**31: a sparse 5 GB file holds the entries read."""
    n = 50_000
    count = n * (n - 1) // 2
    path = tmp_path / "sparse.f32"
    with path.open("wb") as handle:
        handle.truncate(count * 4)
    if os.stat(path).st_blocks * 512 > 1 << 20:
        pytest.skip("the file system does not support sparse files")
    table = np.memmap(path, dtype=np.float32, mode="r+", shape=(count,))
    pairs = [(n, n - 1), (n, 1), (46_342, 46_341), (30_000, 2)]
    for k, (a, b) in enumerate(pairs):
        table[(a - 1) * (a - 2) // 2 + (b - 1)] = k + 1
    table.flush()
    data = GeodesicEvalData("big", np.array([1]), np.zeros((1, 2)), np.array([n]), np.memmap(path, np.float32, "r"))
    gt = np.array([a for a, _ in pairs], dtype=np.int32)
    dt = np.array([b for _, b in pairs], dtype=np.int32)
    np.testing.assert_array_equal(data.distances(gt, dt), [1, 2, 3, 4])
    np.testing.assert_array_equal(data.distances(dt, gt), [1, 2, 3, 4])


# ---------------------------------------------------------------------------------- nearest vertices
def reference_nearest(data: GeodesicEvalData, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The official findAllClosestVertsUV: cdist + argmin per part, then the transform; 0 for chart 0."""
    out = np.zeros(charts.size, dtype=np.int64)
    for c in range(1, 25):
        rows = charts == c
        if rows.any():
            members = np.flatnonzero(data.part_ids == c)
            d = cdist(data.uv[members], np.stack([u[rows], v[rows]], axis=1))
            out[rows] = data.transform[members[np.argmin(d, axis=0)]]
    return out


def test_nearest_vertices_equal_cdist_argmin_with_ties() -> None:
    rng = np.random.default_rng(0)
    m = 3000
    part_ids = rng.integers(1, 25, m)
    uv = np.where(rng.random((m, 1)) < 0.5, rng.random((m, 2)), rng.integers(0, 11, (m, 2)) / 10)  # half on a grid
    uv[100:106] = uv[7]  # many duplicate UVs: more copies than the tree is asked for
    part_ids[100:106] = part_ids[7]
    data = GeodesicEvalData("random", part_ids, uv, rng.integers(1, 501, m), np.zeros(500 * 499 // 2))
    p = 20_000
    charts = rng.integers(0, 25, p)
    for u, v in (
        rng.random((2, p)),  # random points
        rng.integers(0, 256, (2, p)) / 255,  # quantized as predictions are
        rng.integers(0, 21, (2, p)) / 20,  # midway between grid vertices: exact ties
        uv[rng.integers(0, m, p)].T,  # exactly on vertices, including the duplicates
    ):
        got = data.nearest_vertices(charts, u, v)
        np.testing.assert_array_equal(got, reference_nearest(data, charts, u, v))
        assert (got[charts == 0] == 0).all()
    with pytest.raises(ValueError, match=r"charts must be in 0\.\.24"):
        data.nearest_vertices(np.array([25]), np.array([0.5]), np.array([0.5]))


def test_nearest_vertices_of_a_handmade_table() -> None:
    data = tiny()
    got = data.nearest_vertices(np.array([1, 1, 2, 2, 24, 0]), np.array([0, 1, 0.5, 0, 0.9, 0.5]), np.zeros(6) + 0.5)
    # Chart 2: UV vertices 2 and 4 (0-based) both at (0.5, 0.5) on table vertex 3; (0, 0.5) is nearest (0.2, 0.8).
    np.testing.assert_array_equal(got, [1, 2, 3, 4, 5, 0])
    with pytest.raises(ValueError, match="chart 3 has no UV-space vertices"):
        data.nearest_vertices(np.array([3]), np.array([0.5]), np.array([0.5]))


def test_anny_data_matches_the_body_surface(surface: BodySurface) -> None:
    data = from_body_surface(surface)
    assert data.table_size == surface.geodesic_vertices.size
    rng = np.random.default_rng(1)
    charts, u, v = rng.integers(0, 25, 50_000), rng.random(50_000), rng.random(50_000)
    got = data.nearest_vertices(charts, u, v)
    np.testing.assert_array_equal(got, np.where(charts > 0, surface.closest_table_vertex(charts, u, v) + 1, 0))
    gt, dt = rng.integers(1, data.table_size + 1, (2, 10_000))
    np.testing.assert_allclose(data.distances(gt, dt), surface.table_distance(gt - 1, dt - 1))


# ----------------------------------------------------------------------------------- official files
def test_export_and_load_round_trip(surface: BodySurface, tmp_path: Path, cache: Path) -> None:
    data = from_body_surface(surface)
    vertices = surface.vertices[surface.geodesic_vertices[surface.uv_table_index]]
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    written = export_official(data, tmp_path / "eval", vertices=vertices, faces=faces)
    assert [p.name for p in written] == [SUBDIV_FILE, TRANSFORM_FILE, PDIST_FILE]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(p.name for p in written)
    m = data.part_ids.size
    subdiv = scipy.io.loadmat(written[0])
    assert subdiv["U_subdiv"].shape == subdiv["Part_ID_subdiv"].shape == (1, m)
    assert subdiv["vertex"].shape == (3, m)
    np.testing.assert_array_equal(subdiv["faces"], faces.T + 1)
    index = scipy.io.loadmat(written[1])["index"]
    assert index.shape == (m, 1)
    np.testing.assert_array_equal(index.squeeze(), data.transform)
    # The pickle reads as the official code reads it, with protocol-2 opcodes and names every numpy knows.
    with written[2].open("rb") as handle:
        table = pickle.load(handle, encoding="latin1")["Pdist_matrix"]
    assert table.shape == (data.pdist.size, 1)
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table[:, 0], data.pdist)
    with written[2].open("rb") as handle:
        ops = list(pickletools.genops(handle))
    assert max(op.proto for op, _, _ in ops) == 2
    assert "numpy.core.multiarray _reconstruct" in [arg for op, arg, _ in ops if op.name == "GLOBAL"]

    loaded = load_official(tmp_path / "eval")
    assert isinstance(loaded.pdist, np.memmap)
    assert [p.parent for p in cache.iterdir()] == [cache]  # the transcoded table, cached once
    again = load_official(tmp_path / "eval")
    assert Path(again.pdist.filename).parent == cache
    in_memory = load_official(tmp_path / "eval", cache=False)
    rng = np.random.default_rng(2)
    gt, dt = rng.integers(1, data.table_size + 1, (2, 10_000))
    dt[:100] = 0
    dt[100:200] = gt[100:200]
    for other in (loaded, again, in_memory):
        assert other.table_size == data.table_size
        np.testing.assert_array_equal(other.distances(gt, dt), data.distances(gt, dt))
    charts, u, v = rng.integers(0, 25, 10_000), rng.random(10_000), rng.integers(0, 256, 10_000) / 255
    np.testing.assert_array_equal(loaded.nearest_vertices(charts, u, v), data.nearest_vertices(charts, u, v))

    with pytest.raises(FileExistsError, match="already exists"):
        export_official(data, tmp_path / "eval")
    assert export_official(data, tmp_path / "eval", overwrite=True) == written


@pytest.mark.parametrize("kind", ["py2", "protocol2", "protocol4", "protocol5", "flat"])
@pytest.mark.parametrize("n", [5, 600])  # 600 vertices: 1.4 MB of data, which stays on disk while unpickling
def test_load_official_format_files(tmp_path: Path, cache: Path, kind: str, n: int) -> None:
    rng = np.random.default_rng(n)
    table = TINY_PDIST[:, None] if n == 5 else rng.random((n * (n - 1) // 2, 1))
    pickled = {
        "py2": lambda: py2_pickle(table),
        "protocol2": lambda: pickle.dumps({"Pdist_matrix": table}, protocol=2),
        "protocol4": lambda: pickle.dumps({"Pdist_matrix": table}, protocol=4),
        "protocol5": lambda: pickle.dumps({"Pdist_matrix": table}, protocol=5),
        "flat": lambda: pickle.dumps({"Pdist_matrix": table[:, 0]}, protocol=2),
    }[kind]()
    assert np.array_equal(
        pickle.loads(pickled, encoding="latin1")["Pdist_matrix"], table if kind != "flat" else table[:, 0]
    )
    source = tiny()
    data = GeodesicEvalData("x", source.part_ids, source.uv, source.transform, table)
    write_official(tmp_path / "eval", data, pickled)
    loaded = load_official(tmp_path / "eval")
    assert loaded.table_size == n
    np.testing.assert_array_equal(loaded.part_ids, data.part_ids)
    np.testing.assert_array_equal(loaded.transform, data.transform)
    np.testing.assert_array_equal(loaded.uv, data.uv)
    assert loaded.pdist.shape == ((table.size,) if kind == "flat" else table.shape)
    np.testing.assert_array_equal(np.asarray(loaded.pdist).ravel(), table.ravel())
    gt, dt = np.triu_indices(n, k=1)
    np.testing.assert_array_equal(
        loaded.distances(gt[:5000] + 1, dt[:5000] + 1), data.distances(gt[:5000] + 1, dt[:5000] + 1)
    )
    if n == 600 and kind in ("py2", "protocol4", "protocol5"):  # raw bytes: mapped from the pickle itself
        assert Path(loaded.pdist.filename) == tmp_path / "eval" / PDIST_FILE
        assert not cache.exists()


def test_load_eval_body(surface: BodySurface, tmp_path: Path) -> None:
    body = load_eval_body("anny")
    assert body.name == "anny"
    np.testing.assert_array_equal(body.transform, surface.uv_table_index + 1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_eval_body(str(tmp_path / "nowhere"))


def test_malformed_files_give_errors_naming_the_file(tmp_path: Path, cache: Path) -> None:
    good = tiny()
    table = pickle.dumps({"Pdist_matrix": TINY_PDIST[:, None]}, protocol=2)

    def folder_with(name: str, table_bytes: bytes = table, data: GeodesicEvalData = good) -> Path:
        folder = tmp_path / name
        write_official(folder, data, table_bytes)
        return folder

    folder = folder_with("missing")
    (folder / PDIST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"Pdist_matrix\.pkl"):
        load_official(folder)
    folder = folder_with("wrong_key")
    scipy.io.savemat(folder / SUBDIV_FILE, {"U": good.uv[None, :, 0], "V_subdiv": good.uv[None, :, 1]})
    with pytest.raises(ValueError, match=r"SMPL_subdiv\.mat: missing U_subdiv, Part_ID_subdiv"):
        load_official(folder)
    not_triangular = pickle.dumps({"Pdist_matrix": np.zeros((7, 1))}, protocol=2)
    with pytest.raises(ValueError, match=r"Pdist_matrix\.pkl: 7 distances is not n \(n - 1\) / 2"):
        load_official(folder_with("not_triangular", not_triangular))
    # Table vertex 6 written into the transform, while the pickled table has 5 vertices.
    out_of_range = GeodesicEvalData("x", good.part_ids, good.uv, np.array([1, 2, 3, 4, 3, 6]), np.zeros(15))
    with pytest.raises(ValueError, match=r"SMPL_SUBDIV_TRANSFORM\.mat: index .* must be in 1\.\.5, got 1\.\.6"):
        load_official(folder_with("transform", data=out_of_range))
    folder = folder_with("parts")
    scipy.io.savemat(folder / SUBDIV_FILE, {"U_subdiv": good.uv[None, :, 0], "V_subdiv": good.uv[None, :, 1],
                                            "Part_ID_subdiv": np.array([[0, 1, 2, 3, 4, 25]])})  # fmt: skip
    with pytest.raises(ValueError, match=r"SMPL_subdiv\.mat: Part_ID_subdiv must be in 1\.\.24"):
        load_official(folder)
    for name, blob in (
        ("truncated", table[: len(table) // 2]),
        ("garbage", b"this is not a pickle"),
        ("wrong_dict_key", pickle.dumps({"distances": TINY_PDIST}, protocol=2)),
        ("foreign_object", pickle.dumps(OrderedDict(Pdist_matrix=TINY_PDIST), protocol=2)),
        ("truncated_big", pickle.dumps({"Pdist_matrix": np.zeros(300_000)}, protocol=4)[:-500_000]),
    ):
        with pytest.raises(ValueError, match=r"Pdist_matrix\.pkl"):
            load_official(folder_with(name, blob))
    folder = folder_with("bad_mat")
    (folder / TRANSFORM_FILE).write_bytes(b"MATLAB but not really")
    with pytest.raises(ValueError, match=r"SMPL_SUBDIV_TRANSFORM\.mat: cannot read"):
        load_official(folder)


def test_cli_export_writes_files_and_refuses_to_overwrite(
    surface: BodySurface, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["body", "export-eval-data", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in (SUBDIV_FILE, TRANSFORM_FILE, PDIST_FILE):
        assert (out / name).is_file()
        assert f"{out / name}  {(out / name).stat().st_size:,} bytes" in printed
    assert main(["body", "export-eval-data", "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["body", "export-eval-data", str(out), "--quiet", "--overwrite"]) == 0
    data = load_official(out, cache=False)
    np.testing.assert_array_equal(data.transform, surface.uv_table_index + 1)
