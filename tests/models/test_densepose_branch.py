"""DensePose branch: layer names and shapes, point mapping and sampling, the chart losses, the zero-loss path,
detectron2's chart-result conversion and a tiny overfit."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.branches.densepose.branch import DensePoseBranch
from densehuman.models.branches.densepose.decoder import Decoder
from densehuman.models.branches.densepose.head import DeepLabHead, V1ConvXHead
from densehuman.models.branches.densepose.loss import (
    DensePoseChartLoss,
    iid_iso_uv_loss,
    indep_aniso_uv_loss,
    map_points_to_heatmap,
    resample_segm_to_proposals,
)
from densehuman.models.branches.densepose.postprocess import to_chart_result, to_chart_results
from densehuman.models.branches.densepose.predictor import ChartPredictor, UVConfidence
from densehuman.models.instances import DensePoseOutput, DensePoseTarget, Targets
from densehuman.models.poolers import RoIPooler
from detectron2_fixtures import FIXTURES, NAMES

LEVELS = ("p2", "p3", "p4", "p5")
STRIDES = (4, 8, 16, 32)
M = TypeVar("M", bound=nn.Module)


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Module initialization uses torch's global RNG: seed it without leaking the state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build(factory: Callable[[], M], seed: int = 0) -> M:
    with seeded(seed):
        return factory()


def randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def features(gen: torch.Generator, channels: int = 32, size: int = 64, images: int = 2) -> dict[str, torch.Tensor]:
    return {name: randn(gen, images, channels, size // s, size // s) for name, s in zip(LEVELS, STRIDES, strict=True)}


def decoder_branch(
    head: str = "v1", uv_confidence: UVConfidence | None = None, segm_confidence: bool = False
) -> DensePoseBranch:
    def make() -> DensePoseBranch:
        decoder = Decoder(LEVELS, (32,) * 4, STRIDES, conv_dims=32, num_classes=32)
        body: nn.Module = V1ConvXHead(32, 8, 32) if head == "v1" else DeepLabHead(32, 8, 32)
        predictor = ChartPredictor(32, 2, uv_confidence=uv_confidence, segm_confidence=segm_confidence)
        loss = DensePoseChartLoss(uv_confidence=uv_confidence)
        return DensePoseBranch(LEVELS, RoIPooler(28, (0.25,)), body, predictor, loss, decoder=decoder)

    return build(make)


def legacy_branch() -> DensePoseBranch:
    def make() -> DensePoseBranch:
        pooler = RoIPooler(14, tuple(1 / s for s in STRIDES))
        loss = DensePoseChartLoss(part_weight=0.3, index_weight=2.0, point_regression_weight=0.1)
        return DensePoseBranch(LEVELS, pooler, V1ConvXHead(32, 8, 32), ChartPredictor(32, 15), loss)

    return build(make)


def dp_target(
    box: list[float], points: list[tuple[float, float, int, float, float]], segm: torch.Tensor | None = None
) -> DensePoseTarget:
    p = torch.tensor(points, dtype=torch.float32).reshape(-1, 5)
    return DensePoseTarget(torch.tensor(box), p[:, 0], p[:, 1], p[:, 2].long(), p[:, 3], p[:, 4], segm)


def zero_output(rois: int, size: int, coarse: int = 2) -> DensePoseOutput:
    z = torch.zeros
    return DensePoseOutput(
        z(rois, coarse, size, size), z(rois, 25, size, size), z(rois, 25, size, size), z(rois, 25, size, size)
    )


# --- shapes and names ---------------------------------------------------------------------------------------------


def test_v1convx_decoder_branch_pools_28_and_predicts_112() -> None:
    branch = decoder_branch()
    gen = torch.Generator().manual_seed(0)
    boxes = [torch.tensor([[4.0, 4.0, 40.0, 60.0], [10.0, 0.0, 20.0, 30.0]]), torch.tensor([[0.0, 0.0, 63.0, 63.0]])]
    feats = features(gen)
    assert branch.decoder is not None
    pooled = branch.pooler([branch.decoder([feats[n] for n in LEVELS])], boxes)
    assert pooled.shape == (3, 32, 28, 28)
    with torch.no_grad():
        outs = branch.predict(feats, boxes)
    assert [len(o) for o in outs] == [2, 1]
    assert outs[0].coarse_segm.shape == (2, 2, 112, 112)
    for field in (outs[1].fine_segm, outs[1].u, outs[1].v):
        assert field.shape == (1, 25, 112, 112)
    assert outs[0].sigma_2 is None
    assert outs[0].fine_segm_confidence is None


def test_legacy_branch_pools_each_box_from_its_level_and_predicts_56_with_15_channels() -> None:
    branch = legacy_branch()
    assert branch.decoder is None
    gen = torch.Generator().manual_seed(1)
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 63.0, 63.0]])]
    with torch.no_grad():
        (out,) = branch.predict(features(gen, images=1), boxes)
    assert out.coarse_segm.shape == (2, 15, 56, 56)
    assert out.fine_segm.shape == (2, 25, 56, 56)


def test_pooler_level_assignment_matches_detectron2() -> None:
    pooler = RoIPooler(7, tuple(1 / s for s in STRIDES))
    sides = torch.tensor([224.0, 112.0, 111.9, 10.0, 448.0, 1000.0])
    boxes = torch.stack([torch.zeros(6), torch.zeros(6), sides, sides], dim=1)
    # floor(4 + log2(side / 224)) clamped to 2..5, minus 2
    assert pooler.level_of(boxes).tolist() == [2, 1, 0, 0, 3, 3]
    # constant maps, one value per level: the pooled value tells the level each box was read from
    maps = [torch.full((2, 3, 512 // s, 512 // s), float(k)) for k, s in enumerate(STRIDES)]
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 120.0, 120.0], [0, 0, 230.0, 230.0], [0, 0, 500.0, 500.0]])
    pooled = pooler(maps, [boxes[:2], boxes[2:]])
    assert pooled.shape == (4, 3, 7, 7)
    assert pooled[:, 0, 3, 3].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_pooler_rejects_non_pyramid_scales() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        RoIPooler(7, (0.25, 0.0625))


def test_deeplab_head_shapes_and_detectron2_names() -> None:
    head = build(lambda: DeepLabHead(32, num_convs=2, conv_dim=32, use_nonlocal=True))
    names = set(head.state_dict())
    assert {"ASPP.convs.4.1.weight", "ASPP.project.0.weight", "body_conv_fcn2.norm.bias", "NLBlock.W.1.weight"} <= names
    assert "body_conv_fcn1.bias" not in names  # GN convs have no bias
    x = torch.randn(3, 32, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = head(x)
        # a fresh non-local block is the identity (zero-initialized output norm)
        assert head.NLBlock is not None
        assert torch.equal(head.NLBlock(x), x)
    assert y.shape == (3, 32, 28, 28)
    with torch.no_grad():  # one RoI (one value per GroupNorm group in the ASPP pooling branch) works and is per-RoI
        torch.testing.assert_close(head(x[1:2]), y[1:2])
    branch = decoder_branch(head="dl")
    with torch.no_grad():
        (out,) = branch.predict(
            features(torch.Generator().manual_seed(3), images=1), [torch.tensor([[1.0, 2, 30, 40]])]
        )
    assert out.u.shape == (1, 25, 112, 112)


@pytest.mark.parametrize("uv_confidence", [None, "iid_iso", "indep_aniso"])
def test_confidence_predictor_outputs(uv_confidence: UVConfidence | None) -> None:
    predictor = build(lambda: ChartPredictor(16, 2, uv_confidence=uv_confidence, segm_confidence=True))
    x = torch.randn(2, 16, 7, 7, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = predictor(x)
        raw_fine = F.interpolate(predictor.index_uv_lowres(x), scale_factor=2, mode="bilinear", align_corners=False)
    assert out.u.shape == (2, 25, 28, 28)
    assert (out.sigma_2 is not None) == (uv_confidence is not None)
    assert (out.kappa_u is not None) == (out.kappa_v is not None) == (uv_confidence == "indep_aniso")
    if out.sigma_2 is not None:
        assert out.sigma_2.shape == (2, 25, 28, 28)
    assert out.fine_segm_confidence is not None
    assert out.coarse_segm_confidence is not None
    assert out.fine_segm_confidence.shape == (2, 1, 28, 28)
    assert float(out.fine_segm_confidence.min()) > 0.01  # softplus + epsilon
    torch.testing.assert_close(out.fine_segm, raw_fine * out.fine_segm_confidence)


@pytest.mark.parametrize(
    ("folder", "head", "coarse", "uv_conf", "segm_conf", "decoder"),
    [
        ("densepose_rcnn_R_50_FPN_s1x", "v1", 2, None, False, True),
        ("densepose_rcnn_R_50_FPN_s1x_legacy", "v1", 15, None, False, False),
        ("densepose_rcnn_R_50_FPN_DL_s1x", "dl", 2, None, False, True),
        ("densepose_rcnn_R_50_FPN_WC1M_s1x", "v1", 2, "iid_iso", True, True),
    ],
)
def test_layer_names_match_detectron2_fixtures(
    folder: str, head: str, coarse: int, uv_conf: UVConfidence | None, segm_conf: bool, decoder: bool
) -> None:
    if not (FIXTURES / folder).is_dir():
        pytest.skip("detectron2 fixtures not available")
    with (FIXTURES / folder / "model.pkl").open("rb") as f:
        weights = pickle.load(f)["model"]
    expected = {
        k: tuple(v.shape) for k, v in weights.items() if k.startswith(("roi_heads.decoder.", "roi_heads.dense"))
    }
    modules: dict[str, nn.Module] = {
        "roi_heads.densepose_head.": V1ConvXHead(32, 8, 32) if head == "v1" else DeepLabHead(32, 8, 32),
        "roi_heads.densepose_predictor.": ChartPredictor(32, coarse, uv_confidence=uv_conf, segm_confidence=segm_conf),
    }
    if decoder:
        modules["roi_heads.decoder."] = Decoder(LEVELS, (32,) * 4, STRIDES, conv_dims=32, num_classes=32)
    ours = {prefix + k: tuple(v.shape) for prefix, m in modules.items() for k, v in m.state_dict().items()}
    assert ours == expected


def check_chart_conversion(folder: str) -> None:
    """detectron2's raw outputs of detection 0 through our ``to_chart_result`` give its chart: the only arithmetic
    is the bilinear resize to box size, so labels agree except at score ties and U, V to the resampling tolerance."""
    from densehuman.numerics import ReductionProfile
    from detectron2_fixtures import check_charts, convert, reference

    ref = reference(folder)
    fields = {k.split("/")[1] for k in ref if k.startswith("head/")}
    output = DensePoseOutput(**{f: torch.from_numpy(ref[f"head/{f}/instance0"])[None] for f in fields})
    converted = convert(output, torch.from_numpy(ref["boxes_xyxy"][0]))
    check_charts(ref, [converted], np.array([0]), folder, computation=ReductionProfile(1, 1))


@pytest.mark.numerics
@pytest.mark.parametrize("folder", [f for f in NAMES])
def test_chart_result_of_detectron2_outputs_matches_detectron2(folder: str) -> None:
    if not (FIXTURES / folder).is_dir():
        pytest.skip("detectron2 fixtures not available")
    check_chart_conversion(folder)


@pytest.mark.parametrize("mistake", ["align_corners=True", "U and V swapped"])
def test_chart_conversion_check_catches_small_mistakes(mistake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not FIXTURES.is_dir():
        pytest.skip("detectron2 fixtures not available")
    import densehuman.models.branches.densepose.postprocess as branch_module

    if mistake == "align_corners=True":  # the resize's grid half a pixel off
        interpolate = F.interpolate

        def corners(x: torch.Tensor, size: tuple[int, int], mode: str, align_corners: bool) -> torch.Tensor:
            return interpolate(x, size, mode=mode, align_corners=True)

        monkeypatch.setattr(branch_module.F, "interpolate", corners)
    else:
        real = branch_module.chart_scores_at_box

        def swapped(output: DensePoseOutput, box: torch.Tensor) -> tuple[torch.Tensor, ...]:
            coarse, fine, u, v = real(output, box)
            return coarse, fine, v, u

        monkeypatch.setattr(branch_module, "chart_scores_at_box", swapped)
    with pytest.raises(AssertionError):
        check_chart_conversion(NAMES[0])


# --- point mapping and sampling -----------------------------------------------------------------------------------


def test_point_at_box_centre_maps_to_heatmap_centre_and_outside_points_are_invalid() -> None:
    gt = torch.tensor([[10.0, 20.0, 110.0, 220.0]])
    x = torch.tensor([128.0, 10.0, 256.0, 0.0])
    y = torch.tensor([128.0, 128.0, 128.0, 0.0])
    same = map_points_to_heatmap(x, y, gt.expand(4, 4), gt.expand(4, 4), torch.zeros(4, dtype=torch.long), 112, 112)
    assert same.x_lo[0] == 56
    assert same.y_lo[0] == 56
    assert same.x_w[0] == 0
    assert same.y_w[0] == 0
    assert same.valid.tolist() == [True, True, False, True]  # x = 256 is on the far edge: outside [x0, x0 + w)
    right_half = torch.tensor([[60.0, 20.0, 110.0, 220.0]])
    half = map_points_to_heatmap(
        x, y, gt.expand(4, 4), right_half.expand(4, 4), torch.zeros(4, dtype=torch.long), 112, 112
    )
    assert half.valid.tolist() == [True, False, False, False]
    assert half.x_lo[0] == 0  # the GT centre is the proposal's left edge


def test_bilinear_sampling_of_a_ramp_is_exact() -> None:
    size = 16
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    ramp = torch.stack([100 * c + 10 * yy + xx for c in range(3)])[None].repeat(2, 1, 1, 1)  # (2, 3, 16, 16)
    ramp[1] *= -1
    gen = torch.Generator().manual_seed(5)
    box = torch.tensor([[0.0, 0.0, 64.0, 32.0]])
    x = torch.rand(50, generator=gen) * 230
    y = torch.rand(50, generator=gen) * 230
    roi = torch.randint(0, 2, (50,), generator=gen)
    channel = torch.randint(0, 3, (50,), generator=gen)
    points = map_points_to_heatmap(x, y, box.expand(50, 4), box.expand(50, 4), roi, size, size)
    gx, gy = x * size / 256, y * size / 256
    sign = 1 - 2 * roi.float()
    torch.testing.assert_close(points.sample(ramp, channel), sign * (100 * channel + 10 * gy + gx))
    all_channels = points.sample(ramp)
    assert all_channels.shape == (50, 3)
    torch.testing.assert_close(all_channels[:, 2], sign * (200 + 10 * gy + gx))


def test_segm_resampling_is_nearest_and_zero_outside_the_gt_box() -> None:
    segm = torch.zeros(1, 256, 256, dtype=torch.long)
    segm[0, :, 128:] = 7
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    same = resample_segm_to_proposals(segm, gt, gt, 8, 8)
    # output column j reads input column round(j / 8 * 255)
    assert same[0, 0].tolist() == [0, 0, 0, 0, 7, 7, 7, 7]
    shifted = resample_segm_to_proposals(segm, gt, torch.tensor([[50.0, 0.0, 150.0, 100.0]]), 8, 8)
    assert shifted[0, 3].tolist() == [7, 7, 7, 7, 7, 0, 0, 0]


# --- losses -------------------------------------------------------------------------------------------------------


def test_uv_loss_reads_only_the_gt_chart_channel() -> None:
    loss = DensePoseChartLoss()
    box = [0.0, 0.0, 56.0, 56.0]
    target = dp_target(box, [(100.0, 50.0, 3, 0.2, 0.9), (30.0, 200.0, 17, 0.5, 0.1)])
    proposals = torch.tensor([box])
    out = zero_output(1, 56)
    base = loss(out, proposals, [target])
    other = [c for c in range(25) if c not in (3, 17)]
    out.u[:, other] = 5.0
    out.v[:, other] = -5.0
    assert base["loss_densepose_U"] == loss(out, proposals, [target])["loss_densepose_U"]
    assert base["loss_densepose_V"] == loss(out, proposals, [target])["loss_densepose_V"]
    # U: smooth-L1 sum (0.5 * 0.2^2 + 0.5 * 0.5^2) * 0.01
    assert float(base["loss_densepose_U"]) == pytest.approx(0.01 * 0.5 * (0.04 + 0.25))
    out.u[:, 3] = 0.2
    assert float(loss(out, proposals, [target])["loss_densepose_U"]) == pytest.approx(0.01 * 0.5 * 0.25)


def test_i_loss_is_log25_for_flat_logits_and_falls_when_logits_favour_the_gt_chart() -> None:
    loss = DensePoseChartLoss(part_weight=1.0)
    box = [5.0, 5.0, 61.0, 61.0]
    target = dp_target(box, [(100.0, 50.0, 3, 0.2, 0.9), (30.0, 200.0, 17, 0.5, 0.1), (10.0, 10.0, 17, 0.5, 0.5)])
    out = zero_output(1, 56)
    flat = float(loss(out, torch.tensor([box]), [target])["loss_densepose_I"])
    assert flat == pytest.approx(math.log(25))
    out.fine_segm[:, 17] = 3.0
    favoured = float(loss(out, torch.tensor([box]), [target])["loss_densepose_I"])
    # 2 of 3 points are chart 17: mean of -log softmax
    expected = (2 * (math.log(24 + math.e**3) - 3) + math.log(24 + math.e**3)) / 3
    assert favoured == pytest.approx(expected, rel=1e-5)
    assert favoured < flat


@pytest.mark.parametrize("channels", [2, 15])
def test_s_loss_against_the_resampled_label_map(channels: int) -> None:
    loss = DensePoseChartLoss(index_weight=2.0)
    box = [0.0, 0.0, 56.0, 56.0]
    segm = torch.zeros(256, 256, dtype=torch.long)
    segm[:, :128] = 9  # left half: coarse part 9, right half background
    target = dp_target(box, [(60.0, 60.0, 5, 0.5, 0.5)], segm)
    out = zero_output(1, 56, coarse=channels)
    flat = float(loss(out, torch.tensor([box]), [target])["loss_densepose_S"])
    assert flat == pytest.approx(2.0 * math.log(channels))
    fg = 1 if channels == 2 else 9
    out.coarse_segm[:, fg, :, :28] = 20.0
    out.coarse_segm[:, 0, :, 28:] = 20.0
    good = float(loss(out, torch.tensor([box]), [target])["loss_densepose_S"])
    assert good < 1e-6
    out.coarse_segm[:, fg, :, :28] = -10.0  # now the left half is confidently wrong
    assert float(loss(out, torch.tensor([box]), [target])["loss_densepose_S"]) > flat


def test_gaussian_uv_losses_known_values() -> None:
    zero = torch.zeros(4)
    raw = torch.full((4,), math.log(math.e**0.99 - 1))  # softplus(raw) + 0.01 = 1
    assert float(iid_iso_uv_loss(zero, zero, raw, zero, zero)) == pytest.approx(4 * 0.5 * math.log(2 * math.pi))
    gen = torch.Generator().manual_seed(6)
    u, v, s, ug, vg = (torch.randn(20, generator=gen) for _ in range(5))
    # without the anisotropic part, the anisotropic loss is the isotropic one
    torch.testing.assert_close(
        indep_aniso_uv_loss(u, v, s, torch.zeros(20), torch.zeros(20), ug, vg), iid_iso_uv_loss(u, v, s, ug, vg)
    )


def test_confidence_branch_replaces_u_and_v_by_uv_loss() -> None:
    branch = decoder_branch(uv_confidence="indep_aniso", segm_confidence=True)
    box = torch.tensor([[4.0, 4.0, 40.0, 60.0]])
    targets = [Targets(box, torch.zeros(1, dtype=torch.long), [dp_target(box[0].tolist(), [(128, 128, 2, 0.5, 0.5)])])]
    losses = branch.losses(features(torch.Generator().manual_seed(7), images=1), [box], [torch.tensor([0])], targets)
    assert set(losses) == {"loss_densepose_UV", "loss_densepose_I", "loss_densepose_S"}
    assert losses["loss_densepose_S"].item() == 0.0  # no coarse GT in the target


# --- the branch in training ---------------------------------------------------------------------------------------


def test_filter_keeps_proposals_above_the_iou_threshold_whose_gt_has_densepose() -> None:
    branch = decoder_branch()
    feats = features(torch.Generator().manual_seed(8), images=1)
    gt_boxes = torch.tensor([[4.0, 4.0, 44.0, 60.0], [30.0, 10.0, 60.0, 40.0]])
    segm = torch.zeros(256, 256, dtype=torch.long)
    segm[64:192, 64:192] = 1
    dp = dp_target(gt_boxes[0].tolist(), [(128, 128, 2, 0.3, 0.7), (40, 200, 11, 0.9, 0.1)], segm)
    targets = [Targets(gt_boxes, torch.zeros(2, dtype=torch.long), [dp, None])]
    good = torch.tensor([[5.0, 4.0, 44.0, 58.0]])  # IoU 0.94 with GT 0
    proposals = torch.cat([good, torch.tensor([[4.0, 4.0, 24.0, 60.0]]), gt_boxes[1:]])  # IoU 0.5; GT without dp
    losses = branch.losses(feats, [proposals], [torch.tensor([0, 0, 1])], targets)
    with torch.no_grad():
        expected = branch.loss(branch(feats, [good]), good, [dp])
    assert set(losses) == {"loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S"}
    for key, value in expected.items():
        torch.testing.assert_close(losses[key].detach(), value)
    assert all(v.item() > 0 for v in losses.values())


def test_no_kept_proposal_gives_zero_losses_that_reach_every_parameter() -> None:
    for branch in (decoder_branch(), legacy_branch(), decoder_branch(uv_confidence="iid_iso", segm_confidence=True)):
        feats = features(torch.Generator().manual_seed(9))
        gt = torch.tensor([[4.0, 4.0, 44.0, 60.0]])
        targets = [
            Targets(gt, torch.zeros(1, dtype=torch.long), [dp_target(gt[0].tolist(), [(9, 9, 1, 0.5, 0.5)])]),
            Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
        ]
        proposals = [torch.tensor([[4.0, 4.0, 14.0, 60.0]]), torch.zeros(0, 4)]  # IoU 0.25: filtered out
        losses = branch.losses(feats, proposals, [torch.tensor([0]), torch.zeros(0, dtype=torch.long)], targets)
        assert all(v.item() == 0.0 and v.grad_fn is not None for v in losses.values())
        sum(losses.values()).backward()
        missing = [n for n, p in branch.named_parameters() if p.grad is None]
        assert missing == []


def test_overfit_one_proposal_losses_fall_by_half() -> None:
    def make() -> DensePoseBranch:
        return DensePoseBranch(
            ("p2",), RoIPooler(14, (0.25,)), V1ConvXHead(16, 2, 32), ChartPredictor(32, 2), DensePoseChartLoss()
        )

    branch = build(make)
    rng = np.random.default_rng(10)
    feats = {"p2": torch.from_numpy(rng.standard_normal((1, 16, 20, 20)).astype(np.float32))}
    box = torch.tensor([[8.0, 12.0, 56.0, 76.0]])
    n = 100
    xy = rng.uniform(0, 255, (n, 2))
    segm = torch.zeros(256, 256, dtype=torch.long)
    segm[32:224, 48:208] = 1
    dp = DensePoseTarget(
        box[0],
        torch.tensor(xy[:, 0], dtype=torch.float32),
        torch.tensor(xy[:, 1], dtype=torch.float32),
        torch.from_numpy(rng.integers(1, 25, n)),
        torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32),
        torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32),
        segm,
    )
    targets = [Targets(box, torch.zeros(1, dtype=torch.long), [dp])]
    optimizer = torch.optim.Adam(branch.parameters(), lr=2e-3)
    history = []
    for _ in range(40):
        losses = branch.losses(feats, [box], [torch.tensor([0])], targets)
        history.append({k: v.item() for k, v in losses.items()})
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    for key in history[0]:
        assert history[-1][key] < 0.5 * history[0][key], (key, history[0][key], history[-1][key])


# --- chart results ------------------------------------------------------------------------------------------------


def test_to_chart_result_known_answer() -> None:
    s = 8
    out = zero_output(1, s)
    out.fine_segm[0, 3, :, : s // 2] = 5.0  # chart 3 wins on the left
    out.fine_segm[0, 7, :, s // 2 :] = 5.0  # chart 7 on the right
    out.coarse_segm[0, 1, : s // 2] = 1.0  # foreground on the top half only
    out.u[0, 3], out.v[0, 3] = 0.25, 0.5
    out.u[0, 7], out.v[0, 7] = 0.75, 1.0
    result = to_chart_result(out, torch.tensor([3.0, 4.0, 3.0 + s, 4.0 + s]))  # box as big as the heatmap
    labels = np.zeros((s, s), dtype=np.int64)
    labels[: s // 2, : s // 2] = 3
    labels[: s // 2, s // 2 :] = 7
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.uv[0], np.select([labels == 3, labels == 7], [0.25, 0.75], 0.0))
    np.testing.assert_array_equal(result.uv[1], np.select([labels == 3, labels == 7], [0.5, 1.0], 0.0))


def test_to_chart_result_truncates_box_sizes() -> None:
    out = zero_output(2, 8)
    results = to_chart_results(out, torch.tensor([[10.9, 20.2, 30.8, 25.1], [5.0, 5.0, 5.5, 30.0]]))
    assert results[0].shape == (4, 19)  # h = int(4.9), w = int(19.9)
    assert results[1].shape == (25, 1)  # w = int(0.5) = 0 -> 1
    assert results[0].labels.max() == 0  # flat coarse logits: argmax is background
    with pytest.raises(ValueError, match="one box"):
        to_chart_result(out, torch.zeros(4))
