"""The ``densehuman`` command: one entry point with a subcommand per capability."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from densehuman.body.build import DEFAULT_GEODESIC_VERTICES, cache_path, load_body_surface
from densehuman.body.charts import CHART_NAMES, FINE_TO_COARSE, NUM_CHARTS


def _add_body(sub: argparse._SubParsersAction) -> None:
    body = sub.add_parser("body", help="the charted body surface (DensePose's 24 charts on the Anny body)")
    actions = body.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("build", "build the body surface and cache it (rebuilds with --rebuild)"),
        ("info", "charts, vertex counts, distortion and the cache path"),
        ("preview", "write PNG pictures of the charts, U, V and a checkerboard, and the UV layouts"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument(
            "--geodesic-vertices",
            type=int,
            default=DEFAULT_GEODESIC_VERTICES,
            help="size of the vertex subset the geodesic table covers (default %(default)s)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "build":
            p.add_argument("--rebuild", action="store_true", help="build even if a cached surface exists")
        if name == "info":
            p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        if name == "preview":
            p.add_argument("--out", required=True, help="folder for the PNG files")
            p.add_argument("--overwrite", action="store_true", help="replace preview files already in --out")


def _run_body(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    surface = load_body_surface(
        args.geodesic_vertices, rebuild=getattr(args, "rebuild", False), progress=not args.quiet
    )
    elapsed = time.perf_counter() - started
    path = cache_path(args.geodesic_vertices)
    if args.action == "build":
        print(f"body surface ready in {elapsed:.1f} s: {path}")
    elif args.action == "info":
        _print_info(surface.metadata, surface, str(path), as_json=args.json)
    elif args.action == "preview":
        from densehuman.body.preview import write_previews

        for written in write_previews(surface, args.out, overwrite=args.overwrite):
            print(written)
    return 0


def _print_info(metadata: dict, surface: object, path: str, as_json: bool) -> None:
    from densehuman.body.surface import BodySurface

    assert isinstance(surface, BodySurface)
    info = {
        "cache": path,
        "vertices": int(surface.vertices.shape[0]),
        "skin_vertices": len(set(surface.faces.ravel().tolist())),
        "faces": int(surface.faces.shape[0]),
        "geodesic_table_vertices": int(surface.geodesic_vertices.size),
        "version": metadata.get("version"),
        "anny_version": metadata.get("anny_version"),
        "build_seconds": metadata.get("build_seconds"),
        "charts": metadata.get("charts", {}),
    }
    if as_json:
        print(json.dumps(info, indent=2))
        return
    print(f"cache:     {info['cache']}")
    print(
        f"mesh:      {info['skin_vertices']} skin vertices of {info['vertices']}, {info['faces']} faces; "
        f"geodesic table over {info['geodesic_table_vertices']} vertices"
    )
    print(f"built by:  body surface v{info['version']}, anny {info['anny_version']}, in {info['build_seconds']} s")
    header = f"{'id':>2} {'chart':24} {'coarse':>6} {'method':13} {'verts':>5} {'faces':>5} {'aspect':>6}"
    print(header + f" {'conformal':>9} {'p95':>5} {'area':>5} {'flips':>5}")
    charts = info["charts"]
    for c in range(1, NUM_CHARTS + 1):
        r = charts.get(CHART_NAMES[c])
        if r is None:
            continue
        d = r["unwrap"]
        print(
            f"{c:2d} {CHART_NAMES[c]:24} {FINE_TO_COARSE[c]:6d} {r['method']:13} {r['vertices']:5d} {r['faces']:5d} "
            f"{r['aspect']:6.2f} {d['conformal']:9.3f} {d['conformal_p95']:5.2f} {d['area']:5.3f} "
            f"{r['final']['flipped']:5d}"
        )
    print("conformal, p95: area-weighted mean / 95th percentile of sigma_max/sigma_min of the unwrapping (1 = none);")
    print("area: mean |log(area ratio)|; flips: triangles whose orientation flips in the final UVs.")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the main job on built-in data: for now, build the body and preview it")
    demo.add_argument("--out", default="demo-output", help="output folder (default %(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_demo(args: argparse.Namespace) -> int:
    from densehuman.body.preview import write_previews

    surface = load_body_surface(progress=not args.quiet)
    written = write_previews(surface, f"{args.out}/body", overwrite=args.overwrite)
    print(f"body surface: {cache_path()}")
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densehuman", description="Instance-level human analysis: dense pose, part segmentation, keypoints."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_body(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "body":
            return _run_body(args)
        if args.command == "demo":
            return _run_demo(args)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"densehuman: error: {err}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
