"""``densehuman evaluate`` and ``densehuman fake-predictions``: the command-line side of the evaluation."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from densehuman import atomic

TABLE_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    text = (
        "score DensePose results (GPS / GPSm / IOU AP and AR, box AP, pointwise RCP); with --task parsing, "
        "human-parsing results (mIoU, APp, PCP, APr, APh as the official Parsing R-CNN / QANet code); with --task "
        "wholebody, COCO-WholeBody keypoint results (OKS AP and AR per part, as xtcocotools)"
    )
    p = sub.add_parser("evaluate", help=text, description=text)
    p.add_argument(
        "--task", default="densepose", choices=("densepose", "parsing", "wholebody"), help="what to score (densepose)"
    )
    p.add_argument(
        "--gt",
        required=True,
        help="ground truth: DensePose-COCO JSON; for parsing a CIHP / MHP v2.0 split folder, the CIHP "
        "instance-level_human_parsing or MHP LV-MHP-v2 folder, or a `densehuman synth` dataset; for wholebody a "
        "COCO-WholeBody JSON",
    )
    p.add_argument(
        "--pred",
        required=True,
        help="results JSON (DensePose: challenge uv_shape/uv_data or detectron2 densepose; parsing: bbox, score, "
        "base64 PNG parsing; wholebody: keypoints, foot_kpts, face_kpts, lefthand_kpts, righthand_kpts, score); for "
        "parsing, an images.json beside it maps its image ids to the split's file names",
    )
    p.add_argument("--dataset", choices=("cihp", "mhp"), help="parsing: the dataset (default: recognised)")
    p.add_argument("--split", default="val", help="parsing: the split of --gt (default val)")
    p.add_argument("--body", default="anny", help="'anny' or a folder with the official SMPL evaluation files")
    p.add_argument("--mode", default="all", choices=("gps", "gpsm", "iou", "all"), help="AP mode (default all)")
    p.add_argument(
        "--kappa", default="official", help="'official' (per-part normalisation) or a number, e.g. the paper's 0.255"
    )
    p.add_argument("--min-threshold", type=float, default=0.5, help="lowest AP threshold (0.5; 0.2 for APex)")
    p.add_argument(
        "--point-scale",
        type=float,
        default=255.0,
        choices=(255.0, 256.0),
        help="dp_x/dp_y scale: 255 as the official evaluator (default), 256 where the training code puts points",
    )
    p.add_argument("--out", help="write every figure as JSON here")
    p.add_argument("--plot", help="write the RCP curve as a PNG here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    text = "turn a synthetic dataset's dense labels into DensePose results: perfect, perturbed or random"
    f = sub.add_parser("fake-predictions", help=text, description=text)
    f.add_argument("dataset", help="a folder written by `densehuman synth`")
    f.add_argument("--split", default="val", choices=("train", "val"))
    f.add_argument("--out", required=True, help="results JSON to write")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--uv-noise", type=float, default=0.0, help="Gaussian sigma added to U and V")
    f.add_argument("--box-jitter", type=float, default=0.0, help="relative box shift")
    f.add_argument("--part-swap", type=float, default=0.0, help="chance per person of swapping left and right charts")
    f.add_argument("--drop", type=float, default=0.0, help="chance of dropping a detection")
    f.add_argument("--random", action="store_true", help="random charts and UVs over each person (a floor)")
    f.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run_fake_predictions(args: argparse.Namespace) -> int:
    import numpy as np

    from densehuman.evaluation.predictions import predictions_from_dataset, save_results

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} already exists (pass --overwrite to replace it)")
    detections = predictions_from_dataset(
        Path(args.dataset),
        args.split,
        rng=np.random.default_rng(args.seed),
        box_jitter=args.box_jitter,
        uv_noise=args.uv_noise,
        part_swap=args.part_swap,
        drop=args.drop,
        random=args.random,
    )
    save_results(out, detections)
    print(f"wrote {out}: {len(detections)} detections")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    if args.task == "parsing":
        return run_parsing_evaluate(args)
    if args.task == "wholebody":
        return run_wholebody_evaluate(args)
    from dataclasses import replace

    from densehuman.evaluation.densepose import MODES, DensePoseEvalConfig, DensePoseEvaluation, load_ground_truth
    from densehuman.evaluation.geodesic_data import load_eval_body
    from densehuman.evaluation.predictions import load_results
    from densehuman.evaluation.rcp import plot_rcp

    kappa = None if args.kappa == "official" else _positive_float(args.kappa, "--kappa")
    config = DensePoseEvalConfig(
        modes=MODES if args.mode == "all" else (args.mode,),
        kappa=kappa,
        min_threshold=args.min_threshold,
        point_scale=args.point_scale,
    )
    started = time.perf_counter()
    gt = load_ground_truth(args.gt)
    categories = {int(c["id"]) for c in gt.get("categories", [])} or {1}
    index = _image_index(args.pred, {Path(str(im["file_name"])).stem: int(im["id"]) for im in gt["images"]}, args.gt)
    image_ids = set(index) if index is not None else {int(im["id"]) for im in gt["images"]}
    detections = load_results(Path(args.pred), image_ids=image_ids, category_ids=categories)
    if index is not None:
        detections = [replace(d, image_id=index[d.image_id]) for d in detections]
    body = load_eval_body(args.body)
    figures = DensePoseEvaluation(gt, detections, body, config, progress=not args.quiet).run()
    figures["seconds"] = round(time.perf_counter() - started, 3)
    print(format_report(figures))
    if args.out:
        atomic.write_json(args.out, figures, indent=1)
        print(f"figures: {args.out}")
    if args.plot and "rcp" in figures:
        plot_rcp(figures["rcp"], args.plot)
        print(f"RCP curve: {args.plot}")
    return 0


def _image_index(pred: str, by_name: dict[str, int], gt: str) -> dict[int, int] | None:
    """Results ids -> ground-truth ids through the ``images.json`` that ``densehuman predict`` writes beside its
    results (None without one: the results then use the ground truth's ids)."""
    from densehuman.evaluation.image_index import beside, read_image_index

    listing = beside(pred)
    return read_image_index(listing, by_name, gt) if listing is not None else None


def run_parsing_evaluate(args: argparse.Namespace) -> int:
    """``evaluate --task parsing``: results image ids are the split's 1-based ``image_id``s, or ids of an
    ``images.json`` beside the results file (the file each prediction run writes), matched to the split by file
    stem."""
    from dataclasses import replace

    from densehuman.data.parsing_folders import open_parsing_split
    from densehuman.evaluation.parsing import ParsingEvaluation, format_parsing_report
    from densehuman.evaluation.parsing_results import load_parsing_results, read_image_index

    started = time.perf_counter()
    split = open_parsing_split(args.gt, args.split, args.dataset)
    pred = Path(args.pred)
    index_file = pred.parent / "images.json"
    index = read_image_index(index_file, split) if index_file.is_file() else {e.image_id: e.image_id for e in split}
    detections = load_parsing_results(
        pred, image_ids=set(index), category_ids={1}, num_classes=split.classes.num_classes
    )
    detections = [replace(d, image_id=index[d.image_id]) for d in detections]
    figures = ParsingEvaluation(split, detections, progress=not args.quiet).run()
    figures["total_seconds"] = round(time.perf_counter() - started, 3)
    print(format_parsing_report(figures))
    if args.out:
        atomic.write_json(args.out, figures, indent=1)
        print(f"figures: {args.out}")
    return 0


def run_wholebody_evaluate(args: argparse.Namespace) -> int:
    """``evaluate --task wholebody``: COCO-WholeBody keypoint AP and AR per part (``densehuman.evaluation.wholebody``);
    ``--out``, as for the other tasks, is written atomically and replaced if it exists."""
    from densehuman.evaluation.image_index import beside
    from densehuman.evaluation.wholebody import evaluate_wholebody, format_wholebody_report
    from densehuman.validation import read_json

    if args.out and Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; give the path of the figures JSON file")
    started = time.perf_counter()
    results: Path | list[Any] = Path(args.pred)
    gt_data = read_json(args.gt, "COCO-WholeBody ground truth") if beside(args.pred) is not None else None
    if isinstance(gt_data, dict) and isinstance(gt_data.get("images"), list):
        images = [im for im in gt_data["images"] if isinstance(im, dict) and isinstance(im.get("id"), int)]
        index = _image_index(args.pred, {Path(str(im.get("file_name"))).stem: im["id"] for im in images}, args.gt)
        records = read_json(args.pred, "COCO-WholeBody results")
        if index is not None and isinstance(records, list):  # the ids of images.json -> the ground truth's
            results = [
                dict(r, image_id=index.get(r["image_id"], r["image_id"]))
                if isinstance(r, dict) and isinstance(r.get("image_id"), int)
                else r
                for r in records
            ]
    figures = evaluate_wholebody(Path(args.gt), results)
    figures["seconds"] = round(time.perf_counter() - started, 3)
    print(format_wholebody_report(figures))
    if args.out:
        atomic.write_json(args.out, figures, indent=1)
        print(f"figures: {args.out}")
    return 0


def format_report(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['images']} images, {figures['gt_people']} GT people ({figures['gt_people_with_points']} with "
        f"DensePose points), {figures['detections']} detections; body {figures.get('body', '?')}, "
        f"kappa {figures['kappa']}"
    ]
    header = f"{'mode':6}" + "".join(f"{k:>7}" for k in TABLE_KEYS)
    lines.append(header)
    for mode in ("gps", "gpsm", "iou"):
        if mode in figures:
            row = figures[mode]
            lines.append(
                f"{mode:6}" + "".join(f"{100 * row[k]:7.2f}" if row[k] >= 0 else f"{'-':>7}" for k in TABLE_KEYS)
            )
    if "bbox" in figures:
        b = figures["bbox"]
        lines.append(f"{'bbox':6}" + "".join(f"{100 * b[k]:7.2f}" for k in ("AP", "AP50", "AP75", "APm", "APl")))
    if "rcp" in figures:
        r = figures["rcp"]
        lines.append(
            f"RCP: {r['points']} points, AUC10 {r['AUC10']:.4f}, AUC30 {r['AUC30']:.4f}, RCP@5cm {r['RCP@5cm']:.4f}, "
            f"RCP@10cm {r['RCP@10cm']:.4f}, median error "
            + (f"{r['median_error_cm']:.2f} cm" if r["median_error_cm"] is not None else "beyond any match")
        )
    if "seconds" in figures:
        lines.append(f"({figures['seconds']:.2f} s)")
    return "\n".join(lines)


def _positive_float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be 'official' or a positive number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
