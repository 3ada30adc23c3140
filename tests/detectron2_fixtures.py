"""The detectron2 reference fixtures (``shared/fixtures/detectron2``) and the one way the tests compare our outputs
with theirs, on any CPU.

Numbers are compared with ``densehuman.numerics`` tolerances: scaled to each tensor's magnitude and to float32
accumulation over the model's longest reduction and depth (plus the chart resampling), which another vector width
or oneDNN kernel stays far inside and a real mistake (a wrong pixel mean, a half-pixel box shift, a swapped channel)
far outside. Chart labels may differ only at pixels where our scores tie to within that tolerance.

The DeepLab fixture is ill-conditioned beyond that model: with 32 channels in 32 GroupNorm groups, its ASPP
image-pooling branch normalizes a single value per group, whose exact result is the norm's bias but whose computed
one is the rounding of ``x * a + b`` with ``a = gamma / sqrt(eps)``: kernel-dependent garbage that moves the head
outputs by about 10 %. Its head outputs and charts are compared against the spread that float32-sized noise at every
layer (``densehuman.numerics.float32_noise``, which models that rounding too) causes on our own model
(``rounding_spread``), times ``SPREAD_FACTOR``. The model bounds the garbage about 3x over, so that check is coarse:
it catches a swapped channel, not a slightly wrong pixel mean (the detections catch that).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from densehuman.engine.detectron2 import load_detectron2_model
from densehuman.models.anchors import pairwise_iou
from densehuman.models.branches.densepose.postprocess import chart_scores_at_box
from densehuman.models.detector import Detector
from densehuman.models.instances import DensePoseOutput
from densehuman.numerics import (
    ReductionProfile,
    assert_float32_close,
    float32_noise,
    near_ties,
    reduction_profile,
    resampling_tolerance,
)
from densehuman.structures import ChartResult


def _fixtures_folder() -> Path:
    if "DENSEHUMAN_D2_FIXTURES" in os.environ:
        return Path(os.environ["DENSEHUMAN_D2_FIXTURES"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "detectron2"
    return beside if beside.is_dir() else Path("/work/shared/fixtures/detectron2")


FIXTURES = _fixtures_folder()
NAMES = [
    "densepose_rcnn_R_50_FPN_s1x",
    "densepose_rcnn_R_50_FPN_s1x_legacy",
    "densepose_rcnn_R_50_FPN_DL_s1x",
    "densepose_rcnn_R_50_FPN_WC1M_s1x",
]
ILL_CONDITIONED = {"densepose_rcnn_R_50_FPN_DL_s1x"}
SPREAD_FACTOR = 1.5  # ill-conditioned fixtures: allowed deviation, in units of the measured rounding spread
MIN_LABEL_AGREEMENT = 0.99  # well-conditioned fixtures: ties are rare, so nearly all labels agree
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="detectron2 fixtures not available")


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / name / "reference.npz") as data:
        return {k: data[k] for k in data.files}


def load_model(name: str) -> Detector:
    """The fixture's model as the importer loads it (as loaded: detectron2's arithmetic)."""
    return load_detectron2_model(FIXTURES / name / "model.pkl", FIXTURES / name / "config.yaml").model


@functools.cache
def profile(name: str) -> ReductionProfile:
    return reduction_profile(load_model(name))


@dataclass(frozen=True)
class ConvertedChart:
    """A chart result with the box-size scores it was taken from (for the tie check)."""

    chart: ChartResult
    coarse: np.ndarray  # (C_S, h, w)
    fine: np.ndarray  # (25, h, w)
    heatmap_size: int


def convert(output: DensePoseOutput, box: torch.Tensor, chart: ChartResult | None = None) -> ConvertedChart:
    from densehuman.models.branches.densepose.postprocess import to_chart_result

    coarse, fine, _, _ = chart_scores_at_box(output, box)
    chart = chart if chart is not None else to_chart_result(output, box)
    return ConvertedChart(chart, coarse.double().numpy(), fine.double().numpy(), int(output.fine_segm.shape[-1]))


@contextmanager
def recording_conversions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ConvertedChart]]:
    """Record every chart conversion the Predictor makes (in the order of its people)."""
    import densehuman.inference.predictor as predictor_module

    real = predictor_module.to_chart_result
    seen: list[ConvertedChart] = []

    def recorder(output: DensePoseOutput, box: torch.Tensor) -> ChartResult:
        chart = real(output, box)
        seen.append(convert(output, box, chart))
        return chart

    with monkeypatch.context() as patch:
        patch.setattr(predictor_module, "to_chart_result", recorder)
        yield seen


def match_detections(ref_boxes: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each reference box, the index of ours with IoU > 0.99 (one to one)."""
    iou = pairwise_iou(torch.from_numpy(ref_boxes).float(), torch.from_numpy(boxes).float()).numpy()
    assert iou.shape[1] == len(ref_boxes), f"{iou.shape[1]} detections, detectron2 has {len(ref_boxes)}"
    assert (iou.max(1) > 0.99).all(), f"unmatched reference boxes: best IoUs {iou.max(1).round(4).tolist()}"
    match = iou.argmax(1)
    assert len(set(match.tolist())) == len(match), "two reference boxes match the same detection"
    return match


def check_detections(ref: dict[str, np.ndarray], boxes: np.ndarray, scores: np.ndarray, name: str) -> np.ndarray:
    """Boxes (original-image pixels) and scores against detectron2's; returns the matching."""
    p = profile(name)
    match = match_detections(ref["boxes_xyxy"], boxes)
    assert_float32_close(boxes[match], ref["boxes_xyxy"], p.longest, p.layers, what="boxes")
    assert_float32_close(np.asarray(scores)[match], ref["scores"], p.longest, p.layers, scale=1.0, what="scores")
    return match


def head_fields(ref: dict[str, np.ndarray]) -> list[str]:
    return sorted({k.split("/")[1] for k in ref if k.startswith("head/")})


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_head_outputs(ref: dict[str, np.ndarray], output: DensePoseOutput, index: int, name: str) -> None:
    """Raw predictor outputs of detection ``index`` (ours) against detectron2's detection 0."""
    spread = rounding_spread(name) if name in ILL_CONDITIONED else None
    p = profile(name)
    for field in head_fields(ref):
        ours = getattr(output, field)[index].double().numpy()
        theirs = ref[f"head/{field}/instance0"]
        assert list(ours.shape) == ref[f"head/{field}/shape"].tolist()[1:], field
        if spread is None:
            assert_float32_close(ours, theirs, p.longest, p.layers, what=f"head output {field}")
        else:
            allowed = SPREAD_FACTOR * spread.head[field]
            error = relative_l2(ours, theirs)
            assert error <= allowed, (
                f"head output {field}: relative error {error:.3g} > {allowed:.3g} (rounding spread)"
            )


def check_charts(
    ref: dict[str, np.ndarray],
    converted: Sequence[ConvertedChart],
    match: np.ndarray,
    name: str,
    computation: ReductionProfile | None = None,
) -> None:
    """Each matched detection's chart: the box-size grid, labels equal except at ties of our scores, U and V equal
    where the labels are (ill-conditioned fixtures: within the rounding spread). ``computation``: the reductions
    from the reference's inputs to the charts (default: the whole model's)."""
    p = computation if computation is not None else profile(name)
    spread = rounding_spread(name) if name in ILL_CONDITIONED and computation is None else None
    same_pixels = pixels = 0
    worst_uv = 0.0
    for i, j in enumerate(match):
        labels, uv = ref[f"chart/{i}/labels"], ref[f"chart/{i}/uv"]
        ours = converted[j]
        assert ours.chart.labels.shape == labels.shape, f"detection {i}: chart grid {ours.chart.labels.shape}"
        same = ours.chart.labels == labels
        same_pixels, pixels = same_pixels + int(same.sum()), pixels + same.size
        uv_scale = float(np.abs(uv).max())
        if spread is not None:
            worst_uv = max(worst_uv, float(np.abs(ours.chart.uv[:, same] - uv[:, same]).max(initial=0)) / uv_scale)
            continue
        size = max(ours.heatmap_size, *labels.shape)

        def tolerance(scores: np.ndarray, size: int = size) -> float:
            scale = float(np.abs(scores).max())
            return p.tolerance(scale) + resampling_tolerance(scale, size)

        coarse_margin = np.abs(ours.coarse[1:].max(axis=0) - ours.coarse[0])
        tie = (coarse_margin <= tolerance(ours.coarse)) | near_ties(ours.fine, labels, tolerance(ours.fine))
        flips = ~same & ~tie
        assert not flips.any(), f"detection {i}: {int(flips.sum())} chart labels differ where the scores do not tie"
        assert_float32_close(
            ours.chart.uv[:, same],
            uv[:, same],
            p.longest,
            p.layers,
            scale=uv_scale,
            extra=resampling_tolerance(uv_scale, size),
            what=f"detection {i}: U, V",
        )
    if spread is None:
        assert same_pixels / pixels >= MIN_LABEL_AGREEMENT, f"labels agree on {same_pixels / pixels:.4f} of the pixels"
    else:
        disagreement = 1 - same_pixels / pixels
        assert disagreement <= SPREAD_FACTOR * spread.labels, (
            f"labels differ on {disagreement:.3f} of the pixels, rounding spread {spread.labels:.3f}"
        )
        assert worst_uv <= SPREAD_FACTOR * spread.uv, f"U, V differ by {worst_uv:.3g}, rounding spread {spread.uv:.3g}"


# --- the rounding spread of ill-conditioned fixtures ----------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """How far float32-sized noise at every layer moves our outputs: per head field the relative L2 change, the
    fraction of chart pixels whose label changes, and the largest U/V change (relative to the largest |U/V|) where
    labels stay."""

    head: dict[str, float]
    labels: float
    uv: float


def run_model(
    name: str, ref: dict[str, np.ndarray], noise_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, DensePoseOutput, list[ConvertedChart]]:
    """The as-loaded model on the resized fixture image: boxes (original pixels), scores, raw outputs, charts."""
    model = load_model(name)
    image = torch.from_numpy(ref["image_resized_bgr"][..., ::-1].copy()).permute(2, 0, 1)
    noise: Any = float32_noise(model, noise_seed) if noise_seed is not None else _nothing()
    with torch.inference_mode(), noise:
        (prediction,) = model.predict([image])
    height, width = ref["image_bgr"].shape[:2]
    (rh, rw) = ref["resized_hw"].tolist()
    boxes = prediction.boxes.numpy() * np.float32([width / rw, height / rh] * 2)
    output = prediction.densepose
    assert isinstance(output, DensePoseOutput)
    charts = [convert(output.index(slice(k, k + 1)), torch.from_numpy(boxes[k])) for k in range(len(boxes))]
    return boxes, prediction.scores.numpy(), output, charts


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@functools.cache
def rounding_spread(name: str, seeds: tuple[int, ...] = (0, 1)) -> Spread:
    ref = reference(name)
    boxes, _, output, charts = run_model(name, ref)
    head = {f: 0.0 for f in head_fields(ref)}
    labels = uv = 0.0
    for seed in seeds:
        noisy_boxes, _, noisy_output, noisy_charts = run_model(name, ref, seed)
        match = match_detections(boxes, noisy_boxes)
        for f in head:
            a = getattr(noisy_output, f)[torch.from_numpy(match)].double().numpy()
            head[f] = max(head[f], relative_l2(a, getattr(output, f).double().numpy()))
        same = pixels = 0
        for k, j in enumerate(match):
            ours, noisy = charts[k].chart, noisy_charts[j].chart
            if ours.labels.shape != noisy.labels.shape:
                continue
            agree = ours.labels == noisy.labels
            same, pixels = same + int(agree.sum()), pixels + agree.size
            scale = max(float(np.abs(ours.uv).max()), 1e-30)
            uv = max(uv, float(np.abs(noisy.uv[:, agree] - ours.uv[:, agree]).max(initial=0)) / scale)
        labels = max(labels, 1 - same / max(pixels, 1))
    return Spread(head, labels, uv)
