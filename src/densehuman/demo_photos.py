"""The demo's real photographs and whole-body part: the bundled models on pictures of real people, and the whole-body
network on the synthetic val images with its COCO-WholeBody AP.

The photographs are read at run time from packages the demo depends on, never copied into this one: matplotlib's
sample ``grace_hopper.jpg`` and scikit-image's ``astronaut`` and ``camera`` (``skimage.data``, bundled with the
wheel). They show what the synthetic val figures cannot: how far models trained only on rendered Anny people carry
over to photographs.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from densehuman import atomic


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    from PIL import Image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import skimage.data

        pixels = np.asarray(getattr(skimage.data, name)())
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]

    return read


PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "grace_hopper": ("matplotlib sample data grace_hopper.jpg", _grace_hopper),
    "astronaut": ("scikit-image skimage.data.astronaut()", _skimage("astronaut")),
    "camera": ("scikit-image skimage.data.camera() (grey)", _skimage("camera")),
}


def real_photos() -> list[tuple[str, str, np.ndarray]]:
    """``(name, source, RGB uint8)`` of the photographs whose package is installed (a missing one is skipped)."""
    out = []
    for name, (source, read) in PHOTOS.items():
        try:
            out.append((name, source, np.ascontiguousarray(read(), dtype=np.uint8)))
        except (ImportError, OSError, ValueError) as err:
            print(f"demo: photograph {name} ({source}) is not available here: {err}")
    return out


def region_panels(predictor: Any, rgb: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Boxes, charts and parts of the region ``predictor`` on ``rgb``, and the number of people it found."""
    from densehuman.visualization.densepose import VISUALIZATIONS
    from densehuman.visualization.parsing import parsing_image

    result = predictor(rgb)
    maps = result.dense_maps()
    panels = [VISUALIZATIONS["bbox"](rgb, maps), VISUALIZATIONS["segm"](rgb, maps)]
    if any(p.parsing is not None for p in result.people):
        panels.append(parsing_image(rgb, result.parsing_maps()[0]))
    return panels, len(result.people)


def wholebody_panel(predictor: Any, rgb: np.ndarray) -> tuple[np.ndarray, Any]:
    from densehuman.visualization.wholebody import draw_wholebody

    result = predictor(rgb)
    return draw_wholebody(rgb, result.people), result


def photos_section(out: Path, region: Any | None, wholebody: Any | None) -> str:
    """Write one sheet per photograph under ``out/photos`` (input, region boxes / charts / parts, whole-body
    skeletons) and return the page's HTML section."""
    from densehuman.visualization.densepose import side_by_side

    rows = []
    for name, source, rgb in real_photos():
        panels: list[np.ndarray] = [rgb]
        notes = []
        if region is not None:
            region_pictures, found = region_panels(region, rgb)
            panels += region_pictures
            notes.append(f"region model: {found} people")
        if wholebody is not None:
            picture, result = wholebody_panel(wholebody, rgb)
            panels.append(picture)
            notes.append(f"whole-body model: {len(result.people)} people")
        sheet = side_by_side(*panels, gap=4)
        file = f"photos/{name}.jpg"
        atomic.write_image(out / file, sheet)  # JPEG: RGB in
        rows.append(
            f'<figure><img src="{file}" alt="{name}"><figcaption>{html.escape(name)} ({html.escape(source)}): '
            f"{html.escape('; '.join(notes))}</figcaption></figure>"
        )
    if not rows:
        return "<h2>Real photographs</h2><p>matplotlib and scikit-image are not installed here.</p>"
    return (
        "<h2>Real photographs</h2><p>The same models on photographs of real people (read from the installed "
        "matplotlib and scikit-image). Each row: input, region model boxes, charts and parts, whole-body "
        "skeletons. Both models were trained on rendered synthetic people only: this is where the "
        "synthetic-to-real gap shows (see the README).</p>" + "".join(rows)
    )


def wholebody_section(
    dataset: Path, out: Path, model: Path, split: str = "val", max_images: int = 8
) -> tuple[str, dict[str, Any]]:
    """The whole-body network on the synthetic ``split``: COCO-WholeBody AP per part over all of it, and
    skeleton pictures of the first ``max_images``. Returns the HTML section and the figures."""
    from densehuman.evaluation.wholebody import evaluate_wholebody
    from densehuman.inference.wholebody import WholeBodyPredictor
    from densehuman.inference.wholebody_outputs import coco_wholebody_results
    from densehuman.validation import read_json
    from densehuman.validation.images import read_image
    from densehuman.visualization.densepose import side_by_side

    gt_path = dataset / "annotations" / f"coco_wholebody_{split}.json"
    gt = read_json(gt_path, "COCO-WholeBody ground-truth file")
    predictor = WholeBodyPredictor(model)
    results: list[dict[str, Any]] = []
    rows = []
    for n, image in enumerate(gt["images"]):
        rgb = read_image(dataset / "images" / split / str(image["file_name"]))
        picture, result = wholebody_panel(predictor, rgb)
        results += coco_wholebody_results(result, int(image["id"]))
        if n < max_images:
            file = f"wholebody/{Path(str(image['file_name'])).stem}.png"
            sheet = side_by_side(rgb, picture, gap=4)
            atomic.write_image(out / file, np.ascontiguousarray(sheet[..., ::-1]))  # PNG: BGR in
            rows.append(
                f'<figure><img src="{file}" alt="{file}"><figcaption>image {image["id"]}: {len(result.people)} '
                "people found</figcaption></figure>"
            )
    figures = evaluate_wholebody(gt, results)
    head = "".join(f"<th>{html.escape(part)}</th>" for part in figures["parts"])
    cells = "".join(f"<td>{100 * row['AP']:.1f}</td>" for row in figures["parts"].values())
    table = f"<table><tr><th></th>{head}</tr><tr><th>AP</th>{cells}</tr></table>"
    section = (
        f"<h2>Whole-body keypoints</h2><p>Model <code>{html.escape(model.name)}</code> (BODY_135, one bottom-up "
        f"network) on the {len(gt['images'])} synthetic {split} images: COCO-WholeBody AP per part. Each row: "
        "input, predicted skeletons.</p>" + table + "".join(rows)
    )
    return section, figures
