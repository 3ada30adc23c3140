"""The ``densehuman`` command: one entry point with a subcommand per capability."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

# Only what building the parser needs is imported here: each command imports its own modules when it runs, so
# `densehuman --help` and light commands (evaluate, body info) do not wait for PyTorch.
from densehuman.body.cache import DEFAULT_GEODESIC_VERTICES, cache_path


def _add_body(sub: argparse._SubParsersAction) -> None:
    body = sub.add_parser("body", help="the charted body surface (DensePose's 24 charts on the Anny body)")
    actions = body.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("build", "build the body surface and cache it (rebuilds with --rebuild)"),
        ("info", "charts, vertex counts, distortion and the cache path"),
        ("preview", "write PNG pictures of the charts, U, V and a checkerboard, and the UV layouts"),
        (
            "export-eval-data",
            "write the body's DensePose evaluation files (SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, "
            "Pdist_matrix.pkl) in the official formats",
        ),
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
        if name == "export-eval-data":
            p.add_argument("dir", nargs="?", metavar="DIR", help="output folder (or give it as --out)")
            p.add_argument("--out", help="output folder")
            p.add_argument("--overwrite", action="store_true", help="replace evaluation files already in DIR")


def _run_body(args: argparse.Namespace) -> int:
    if args.action == "info":
        from densehuman.body.cache import surface_summary

        path = cache_path(args.geodesic_vertices)
        if not path.is_file():  # build it first (and cache it): the figures are the build's
            from densehuman.body.build import load_body_surface

            load_body_surface(args.geodesic_vertices, progress=not args.quiet)
        try:
            summary = surface_summary(path)
        except ValueError:  # a damaged cache: rebuild it, as every other command would
            from densehuman.body.build import load_body_surface

            load_body_surface(args.geodesic_vertices, rebuild=True, progress=not args.quiet)
            summary = surface_summary(path)
        _print_info(summary, str(path), as_json=args.json)
        return 0
    from densehuman.body.build import load_body_surface

    started = time.perf_counter()
    surface = load_body_surface(
        args.geodesic_vertices, rebuild=getattr(args, "rebuild", False), progress=not args.quiet
    )
    elapsed = time.perf_counter() - started
    path = cache_path(args.geodesic_vertices)
    if args.action == "build":
        print(f"body surface ready in {elapsed:.1f} s: {path}")
    elif args.action == "preview":
        from densehuman.body.preview import write_previews

        for written in write_previews(surface, args.out, overwrite=args.overwrite):
            print(written)
    elif args.action == "export-eval-data":
        from densehuman.evaluation.geodesic_data import export_official, from_body_surface

        if args.dir and args.out and args.dir != args.out:
            raise ValueError(f"two output folders given: {args.dir} and --out {args.out}")
        out = args.dir or args.out
        if not out:
            raise ValueError("give the output folder: densehuman body export-eval-data DIR")
        data = from_body_surface(surface)
        rest = surface.vertices[surface.geodesic_vertices[surface.uv_table_index]]
        for written in export_official(data, out, overwrite=args.overwrite, vertices=rest):
            print(f"{written}  {written.stat().st_size:,} bytes")
        print(f"{data.part_ids.size} UV-space vertices over a {data.table_size}-vertex geodesic table")
    return 0


def _print_info(summary: dict, path: str, as_json: bool) -> None:
    from densehuman.body.charts import CHART_NAMES, FINE_TO_COARSE, NUM_CHARTS

    metadata = summary["metadata"]
    info = {
        "cache": path,
        "vertices": summary["vertices"],
        "skin_vertices": summary["skin_vertices"],
        "faces": summary["faces"],
        "geodesic_table_vertices": summary["geodesic_table_vertices"],
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
    demo = sub.add_parser(
        "demo", help="the main job on built-in data: build the body surface, generate a small synthetic dataset"
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default %(default)s)")
    demo.add_argument("--images", type=int, default=24, help="synthetic images to generate (default %(default)s)")
    demo.add_argument("--model", help="a run folder or checkpoint to show instead of the bundled model")
    demo.add_argument(
        "--wholebody-model", help="a whole-body checkpoint to show instead of the bundled whole-body model"
    )
    demo.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from densehuman.body.build import load_body_surface
    from densehuman.body.preview import write_previews
    from densehuman.synth.engine import SynthJob, run_synth

    surface = load_body_surface(progress=not args.quiet)
    written = write_previews(surface, f"{args.out}/body", overwrite=args.overwrite)
    print(f"body surface: {cache_path()}")
    for path in written:
        print(path)
    job = SynthJob(out=Path(args.out) / "synth", images=args.images, seed=0, val_fraction=0.25)
    manifest = run_synth(job, overwrite=args.overwrite, progress=not args.quiet)
    rate = manifest["_generated"] / max(manifest["_elapsed_s"], 1e-9)
    print(
        f"synthetic dataset: {job.out} ({args.images} images, {rate:.2f} images/s); "
        f"labels drawn in {job.out}/preview.jpg"
    )
    _demo_evaluation(job.out, Path(args.out) / "evaluation", surface)
    from densehuman.demo import bundled_model, bundled_wholebody_model, model_demo

    model = Path(args.model) if args.model else bundled_model()
    wholebody = Path(args.wholebody_model) if args.wholebody_model else bundled_wholebody_model()
    if model is None:
        print("\nno bundled model in this install: pass --model RUN|CHECKPOINT to see a model's predictions")
        return 0
    page = Path(args.out) / "model"
    figures = model_demo(job.out, page, model, wholebody_model=wholebody)
    print(
        f"\n{model.name} on the val split: GPS AP {100 * figures['gps']['AP']:.1f}, GPSm AP "
        f"{100 * figures['gpsm']['AP']:.1f}, box AP {100 * figures['bbox']['AP']:.1f}"
    )
    if "wholebody" in figures:
        parts = figures["wholebody"]["parts"]
        print(
            f"{wholebody.name if wholebody else ''} on the val split: whole-body AP "
            f"{100 * parts['wholebody']['AP']:.1f}, body AP {100 * parts['body']['AP']:.1f}"
        )
    print(f"open {page / 'index.html'} (synthetic val images, whole-body keypoints, real photographs)")
    return 0


def _demo_evaluation(dataset: object, out: object, surface: object) -> None:
    """Score perfect, perturbed and random predictions of the demo dataset's val split: the yardstick at work."""
    from pathlib import Path

    import numpy as np

    from densehuman import atomic
    from densehuman.body.surface import BodySurface
    from densehuman.evaluation.cli import format_report
    from densehuman.evaluation.densepose import DensePoseEvaluation, load_ground_truth
    from densehuman.evaluation.geodesic_data import from_body_surface
    from densehuman.evaluation.predictions import predictions_from_dataset
    from densehuman.evaluation.rcp import plot_rcp

    assert isinstance(dataset, Path)
    assert isinstance(out, Path)
    assert isinstance(surface, BodySurface)
    gt = load_ground_truth(dataset / "annotations" / "densepose_val.json")
    body = from_body_surface(surface)
    rng = np.random.default_rng(0)
    for name, options in (
        ("perfect", {}),
        ("perturbed", {"uv_noise": 0.05, "box_jitter": 0.03}),
        ("random", {"random": True}),
    ):
        detections = predictions_from_dataset(dataset, "val", rng=rng, **options)
        figures = DensePoseEvaluation(gt, detections, body).run()
        print(f"\nDensePose evaluation of {name} predictions (val split):")
        print(format_report(figures))
        atomic.write_json(out / f"{name}.json", figures, indent=1)
        plot_rcp(figures["rcp"], out / f"{name}_rcp.png", title=f"RCP, {name} predictions")
    print(f"\nevaluation figures and RCP curves: {out}")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    text = "generate a synthetic dataset: images with DensePose-COCO, COCO-WholeBody, IUV/INDS and CIHP labels"
    p = sub.add_parser("synth", help=text, description=text)
    p.add_argument("--out", help="output folder (new or empty; see --resume and --overwrite)")
    p.add_argument("--images", type=int, default=200, help="number of images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default 0)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(512, 512), help="image size (512 512)")
    p.add_argument("--max-people", type=int, default=6, help="at most this many people per image (default 6)")
    p.add_argument("--min-people", type=int, default=1, help="at least this many people per image (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of images in the val split (0.1)")
    p.add_argument("--backgrounds", help="folder of background pictures (default: procedural backgrounds)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per CPU core)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="delete a dataset already in --out and start again")
    p.add_argument("--preview", metavar="DIR", help="only draw the label preview grid of the dataset in DIR")
    p.add_argument("--preview-count", type=int, default=8, help="images in the preview grid (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.preview:
        from densehuman.synth.preview import write_dataset_preview

        root = Path(args.preview)
        if not root.is_dir():
            raise ValueError(f"--preview {root}: not a folder")
        out = Path(args.out) if args.out else root / "preview.jpg"
        print(write_dataset_preview(root, out, count=args.preview_count))
        return 0
    if not args.out:
        raise ValueError("--out is required (the folder to write the dataset into)")
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    config = SynthConfig(
        size=(args.size[0], args.size[1]),
        min_people=args.min_people,
        max_people=args.max_people,
        backgrounds=Path(args.backgrounds) if args.backgrounds else None,
    )
    job = SynthJob(
        out=Path(args.out),
        images=args.images,
        seed=args.seed,
        val_fraction=args.val_fraction,
        config=config,
        workers=args.workers,
        preview_count=args.preview_count,
    )
    manifest = run_synth(job, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    made, elapsed = manifest["_generated"], manifest["_elapsed_s"]
    rate = f" ({made / elapsed:.2f} images/s)" if made and elapsed > 0 else ""
    print(f"wrote {args.out}: {made} images generated in {elapsed:.1f} s{rate}")
    for split, c in manifest["counts"].items():
        print(
            f"  {split:5} {c['images']:6d} images, {c['people']:6d} people, {c['densepose_people']:6d} with "
            f"DensePose points ({c['densepose_points']} points), {c['valid_faces']} valid faces, "
            f"{c['valid_hands']} valid hands"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densehuman", description="Instance-level human analysis: dense pose, part segmentation, keypoints."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_body(sub)
    _add_synth(sub)
    from densehuman.synth import partial_cli

    partial_cli.add_parser(sub)
    from densehuman.evaluation import cli as evaluation_cli

    evaluation_cli.add_parsers(sub)
    from densehuman.engine import cli as engine_cli

    engine_cli.add_parser(sub)
    from densehuman.inference import cli as inference_cli

    inference_cli.add_parser(sub)
    from densehuman.engine.detectron2 import cli as detectron2_cli

    detectron2_cli.add_parser(sub)
    from densehuman.export import cli as export_cli

    export_cli.add_parser(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "body":
            return _run_body(args)
        if args.command == "synth":
            return _run_synth(args)
        if args.command == "predict":
            from densehuman.inference import cli as inference_cli

            return inference_cli.run(args)
        if args.command == "train":
            from densehuman.engine import cli as engine_cli

            return engine_cli.run(args)
        if args.command in ("evaluate", "fake-predictions"):
            from densehuman.evaluation import cli as evaluation_cli

            if args.command == "evaluate":
                return evaluation_cli.run_evaluate(args)
            return evaluation_cli.run_fake_predictions(args)
        if args.command == "demo":
            return _run_demo(args)
        if args.command == "synth-partial":
            from densehuman.synth import partial as synth_partial

            return synth_partial.run(args)
        if args.command == "export":
            from densehuman.export import cli as export_cli

            return export_cli.run(args)
        if args.command == "convert":
            from densehuman.engine.detectron2 import cli as detectron2_cli

            return detectron2_cli.run(args)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"densehuman: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        if "pip install" not in str(err):  # ours name the extra to install; anything else is a bug
            raise
        print(f"densehuman: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("densehuman: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read our output stopped (`densehuman body info | head`): exit quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
