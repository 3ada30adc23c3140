"""Body surface figures: build and load time, per-chart distortion, geodesic accuracy against exact geodesics.

    python benchmarks/body_surface.py [--sources 20] [--json out.json]

Needs the dev extras (pygeodesic computes the exact polyhedral geodesics, MMP algorithm).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from densehuman.body.build import build_body_surface, load_body_surface
from densehuman.body.charts import CHART_NAMES
from densehuman.body.surface import BodySurface, SurfacePoints


def geodesic_accuracy(surface: BodySurface, sources: int, seed: int = 0) -> dict[str, float]:
    """Table distances vs exact geodesics from random table vertices to all table vertices, and the error of
    looking up arbitrary surface points through their nearest table vertex."""
    import pygeodesic.geodesic as geodesic

    used, local = np.unique(surface.faces, return_inverse=True)
    exact = geodesic.PyGeodesicAlgorithmExact(surface.vertices[used].astype(np.float64), local.reshape(-1, 3))
    position = np.searchsorted(used, surface.geodesic_vertices)
    rng = np.random.default_rng(seed)
    n = surface.geodesic_vertices.size
    rel, absolute, point_err = [], [], []
    for s in rng.choice(n, sources, replace=False):
        truth = exact.geodesicDistances(np.array([position[s]]), None)[0]
        table = surface.table_distance(np.full(n, s), np.arange(n))
        far = truth[position] > 0.05
        rel.append(table[far] / truth[position][far] - 1)
        absolute.append(np.abs(table - truth[position]))
        # Arbitrary skin vertices looked up through their nearest table vertex.
        targets = rng.choice(used.size, 500, replace=False)
        faces_of = np.array([np.flatnonzero((surface.faces == used[t]).any(axis=1))[0] for t in targets])
        bary = (surface.faces[faces_of] == used[targets][:, None]).astype(np.float64)
        src_face = np.flatnonzero((surface.faces == surface.geodesic_vertices[s]).any(axis=1))[0]
        src_bary = (surface.faces[src_face] == surface.geodesic_vertices[s]).astype(np.float64)[None].repeat(500, 0)
        looked_up = surface.geodesic_distance(
            SurfacePoints(np.full(500, src_face), src_bary), SurfacePoints(faces_of, bary)
        )
        point_err.append(np.abs(looked_up - truth[targets]))
    r, a, p = np.concatenate(rel), np.concatenate(absolute), np.concatenate(point_err)
    return {
        "table_median_relative_error": float(np.median(np.abs(r))),
        "table_mean_relative_bias": float(r.mean()),
        "table_p99_relative_error": float(np.quantile(np.abs(r), 0.99)),
        "table_max_abs_error_m": float(a.max()),
        "point_lookup_median_abs_error_m": float(np.median(p)),
        "point_lookup_p95_abs_error_m": float(np.quantile(p, 0.95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=20, help="random source vertices for the exact comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    load_body_surface(progress=False)  # makes sure Anny's own cache exists, so the build time is ours alone
    started = time.perf_counter()
    surface = build_body_surface(progress=False)
    build_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.npz"
        surface.save(path)
        size_mb = path.stat().st_size / 2**20
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            BodySurface.load(path)
            loads.append(time.perf_counter() - started)
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    surface.surface_points(rng.integers(1, 25, 100_000), rng.random(100_000), rng.random(100_000))
    lookup_s = time.perf_counter() - started
    accuracy = geodesic_accuracy(surface, args.sources)

    print(f"{'what':44} {'value':>12}")
    print(f"{'build from Anny (s)':44} {build_s:12.1f}")
    print(f"{'cache file (MiB)':44} {size_mb:12.1f}")
    print(f"{'load from cache, median of 5 (ms)':44} {1000 * float(np.median(loads)):12.1f}")
    print(f"{'(I,U,V) -> surface point, 100k points (ms)':44} {1000 * lookup_s:12.1f}")
    for key, value in accuracy.items():
        print(f"{key:44} {value:12.4f}")
    print()
    print(
        f"{'id':>2} {'chart':24} {'method':13} {'conformal':>9} {'p95':>5} {'area':>6} {'final conf':>10} {'flips':>5}"
    )
    for name, r in surface.metadata["charts"].items():
        u, f = r["unwrap"], r["final"]
        print(
            f"{r['id']:2d} {name:24} {r['method']:13} {u['conformal']:9.3f} {u['conformal_p95']:5.2f} "
            f"{u['area']:6.3f} {f['conformal']:10.3f} {f['flipped']:5d}"
        )
    assert set(surface.metadata["charts"]) == set(CHART_NAMES[1:])
    if args.json:
        Path(args.json).write_text(
            json.dumps({"build_s": build_s, "load_ms": 1000 * float(np.median(loads)), **accuracy}, indent=2)
        )


if __name__ == "__main__":
    main()
