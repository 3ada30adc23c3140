"""The demo's model part: the bundled model predicts the synthetic val images, the evaluator scores it, and one HTML
page shows every image's input, predictions and ground truth side by side with the AP table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from densehuman import atomic

BUNDLED_MODEL = Path(__file__).parent / "weights" / "mobile_parsing_rcnn_b_synthetic.safetensors"
MODEL_CARD = BUNDLED_MODEL.with_name("MODEL_CARD.md")
BUNDLED_WHOLEBODY_MODEL = BUNDLED_MODEL.with_name("body135_cpu_synthetic.safetensors")
WHOLEBODY_MODEL_CARD = BUNDLED_MODEL.with_name("MODEL_CARD_wholebody.md")


def bundled_model() -> Path | None:
    """The small region model shipped with the package (boxes, dense pose, parts; trained on synthetic people
    only), if this install has it."""
    return BUNDLED_MODEL if BUNDLED_MODEL.is_file() else None


def bundled_wholebody_model() -> Path | None:
    """The small whole-body (BODY_135) network shipped with the package (trained on synthetic people only), if this
    install has it."""
    return BUNDLED_WHOLEBODY_MODEL if BUNDLED_WHOLEBODY_MODEL.is_file() else None


def model_demo(
    dataset: Path,
    out: Path,
    model: Path,
    split: str = "val",
    min_score: float = 0.5,
    wholebody_model: Path | None = None,
) -> dict[str, Any]:
    """Predict ``split`` of a synthetic dataset with ``model``, evaluate, and write ``out/index.html`` + PNGs; then
    the same model (and ``wholebody_model``) on real photographs and the whole-body network on ``split``
    (``demo_photos``). Returns the DensePose figures, with the whole-body ones under ``"wholebody"``."""
    from densehuman.body.preview import chart_palette
    from densehuman.data.dense_png import read_iuv
    from densehuman.demo_photos import photos_section, wholebody_section
    from densehuman.evaluation.densepose import DensePoseEvaluation, load_ground_truth
    from densehuman.evaluation.geodesic_data import load_eval_body
    from densehuman.evaluation.predictions import Detection
    from densehuman.inference.predictor import Predictor
    from densehuman.visualization.densepose import VISUALIZATIONS, side_by_side

    gt = load_ground_truth(dataset / "annotations" / f"densepose_{split}.json")
    predictor = Predictor(model, min_score=min_score)
    detections: list[Detection] = []
    rows: list[str] = []
    for image in gt["images"]:
        path = dataset / "images" / split / image["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: missing or unreadable image")
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        result = predictor(rgb)
        detections += result.detections(int(image["id"]))
        maps = result.dense_maps()
        gt_i, _, _ = read_iuv(dataset / "dense" / split / f"{Path(image['file_name']).stem}_IUV.png")
        gt_segm = np.where((gt_i > 0)[..., None], chart_palette()[gt_i], (rgb * 0.35).astype(np.uint8))
        sheet = side_by_side(
            rgb,
            VISUALIZATIONS["bbox"](rgb, maps),
            VISUALIZATIONS["segm"](rgb, maps),
            VISUALIZATIONS["contour"](rgb, maps),
            gt_segm,
            gap=4,
        )
        name = f"{Path(image['file_name']).stem}.png"
        atomic.write_image(out / "images" / name, np.ascontiguousarray(sheet[..., ::-1]))
        rows.append(
            f'<figure><img src="images/{name}" alt="{html.escape(name)}"><figcaption>image {image["id"]}: '
            f"{len(result.people)} people found</figcaption></figure>"
        )
    figures = DensePoseEvaluation(gt, detections, load_eval_body("anny")).run()
    atomic.write_json(out / "evaluation.json", figures, indent=1)
    table = _table(figures)
    card = MODEL_CARD.read_text() if model == BUNDLED_MODEL and MODEL_CARD.is_file() else ""
    wholebody_html = ""
    wholebody_predictor = None
    if wholebody_model is not None:
        from densehuman.inference.wholebody import WholeBodyPredictor

        wholebody_html, wholebody_figures = wholebody_section(dataset, out, wholebody_model, split)
        atomic.write_json(out / "wholebody_evaluation.json", wholebody_figures, indent=1)
        figures = {**figures, "wholebody": wholebody_figures}
        wholebody_predictor = WholeBodyPredictor(wholebody_model)
        if wholebody_model == BUNDLED_WHOLEBODY_MODEL and WHOLEBODY_MODEL_CARD.is_file():
            card += "\n\n" + WHOLEBODY_MODEL_CARD.read_text()
    photos_html = photos_section(out, predictor, wholebody_predictor)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>densehuman demo</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:auto}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>densehuman demo</h1>
<p>Model <code>{html.escape(str(model.name))}</code> on {len(gt["images"])} synthetic images it was not trained on.
Each row: input, detected boxes, predicted charts, predicted U/V contours, ground-truth charts.
The model was trained on synthetic people only; see the model card below.</p>
{table}
{"".join(rows)}
{wholebody_html}
{photos_html}
<h2>Model cards</h2><pre>{html.escape(card) or "not the bundled model"}</pre>
</body></html>"""
    atomic.write_bytes(out / "index.html", page.encode())
    return figures


def _table(figures: dict[str, Any]) -> str:
    keys = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = ""
    for mode in ("gps", "gpsm", "iou"):
        cells = "".join(f"<td>{100 * figures[mode][k]:.1f}</td>" for k in keys)
        body += f"<tr><th>{mode.upper()}</th>{cells}</tr>"
    b = figures["bbox"]
    body += "<tr><th>box</th>" + "".join(f"<td>{100 * b[k]:.1f}</td>" for k in ("AP", "AP50", "AP75", "APm", "APl"))
    body += "<td></td>" * 5 + "</tr>"
    return f"<table><tr><th></th>{head}</tr>{body}</table>"
