"""``prepare_for_inference``: the prepared model gives the unprepared one's outputs (tiny random models with random
batch-norm statistics, and the detectron2 fixtures), each fast kernel equals the PyTorch operation it replaces,
preparation is idempotent, and a prepared model refuses to train."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from densehuman.config import (
    BackboneConfig,
    BoxHeadConfig,
    Config,
    DensePoseHeadConfig,
    FPNConfig,
    ModelConfig,
    RPNConfig,
    to_dict,
)
from densehuman.engine.checkpoint import save_checkpoint
from densehuman.inference.predictor import Predictor
from densehuman.models import fusion
from densehuman.models.backbones import FrozenBatchNorm2d, ResNet
from densehuman.models.branches.densepose.branch import DensePoseBranch, merge_windows
from densehuman.models.branches.densepose.decoder import Decoder
from densehuman.models.branches.densepose.predictor import ChartPredictor
from densehuman.models.build import build_model
from densehuman.models.detector import Detector
from densehuman.models.fusion import pointwise_conv2d, prepare_for_inference, winograd_conv2d
from densehuman.models.instances import Targets
from densehuman.models.poolers import RoIPooler, roi_align_gather
from densehuman.numerics import ReductionProfile, assert_float32_close, reduction_profile

pytestmark = pytest.mark.numerics

FIXTURES = Path("/work/shared/fixtures/detectron2")
FIELDS = ("coarse_segm", "fine_segm", "u", "v")
# Winograd's transforms (NNPACK's F(6x6, 3x3), entries up to 5) add rounding of their own: one layer measured at up
# to 5.8e-6 of the largest output for a 72-long reduction, 1.4x the direct-convolution tolerance, on three
# instruction-set settings. 16 leaves a margin of about 3.
WINOGRAD_FACTOR = 16.0


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def assert_agree(actual: Tensor, expected: Tensor, computation: nn.Module | ReductionProfile, what: str = "") -> None:
    """Equal up to float32 rounding of ``computation``'s reductions, relative to the largest magnitude (random
    networks have wide value ranges)."""
    p = computation if isinstance(computation, ReductionProfile) else reduction_profile(computation)
    assert_float32_close(actual, expected, p.longest, p.layers, what=what or "values")


TINY_CONFIG = ModelConfig(
    backbone=BackboneConfig(stem_out_channels=8, res2_out_channels=16, width_per_group=4),
    fpn=FPNConfig(out_channels=16),
    rpn=RPNConfig(pre_nms_topk_test=300, post_nms_topk_test=60),
    box_head=BoxHeadConfig(fc_dim=32, detections_per_image=8),
    densepose=DensePoseHeadConfig(
        num_stacked_convs=2,
        conv_dim=32,
        decoder_conv_dims=16,
        decoder_num_classes=16,
        pooler_resolution=14,
        heatmap_size=56,
    ),
)


def tiny_model(decoder: bool = True, seed: int = 0) -> Detector:
    """A narrow ResNet-50 DensePose R-CNN whose frozen batch norms are not the identity (so folding matters)."""
    cfg = TINY_CONFIG if decoder else replace(TINY_CONFIG, densepose=replace(TINY_CONFIG.densepose, decoder=False))
    with seeded(seed):
        model = build_model(cfg)
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                c = module.weight.shape[0]
                module.weight.copy_(torch.rand(c) + 0.5)
                module.bias.copy_(torch.randn(c) * 0.1)
                module.running_mean.copy_(torch.randn(c) * 0.1)
                module.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
    return model.eval()


def textured_image(height: int = 256, width: int = 192) -> Tensor:
    """A uint8 RGB image with texture everywhere (zero images make degenerate features); 256 x 192 gives stride-4
    maps large enough for the Winograd path (``MIN_WINOGRAD_PIXELS``)."""
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    base = torch.stack([(xx * 3 + yy) % 256, (xx * yy // 7) % 256, (yy * 5) % 256]).float()
    return (base * 0.7 + torch.rand(3, height, width, generator=g) * 76).to(torch.uint8)


def outputs(model: Detector, image: Tensor) -> tuple[dict[str, Tensor], Any]:
    with torch.inference_mode():
        batch, _ = model.preprocess([image])
        features = model.features(batch)
        (prediction,) = model.predict([image], score_threshold=0.0)
    return features, prediction


def assert_same_outputs(a: Detector, b: Detector, image: Tensor) -> None:
    """``b`` (prepared) gives ``a``'s outputs up to float32 rounding of ``a``'s reductions: features, detections
    (matched by box: near-equal scores may swap) and DensePose outputs."""
    from detectron2_fixtures import match_detections

    p = reduction_profile(a)
    features_a, pred_a = outputs(a, image)
    features_b, pred_b = outputs(b, image)
    for name, value in features_a.items():
        assert_agree(features_b[name], value, p, name)
    assert len(pred_a.scores) == len(pred_b.scores) > 0
    match = torch.from_numpy(match_detections(pred_a.boxes.numpy(), pred_b.boxes.numpy()))
    assert_agree(pred_b.boxes[match], pred_a.boxes, p, "boxes")
    assert_float32_close(pred_b.scores[match], pred_a.scores, p.longest, p.layers, scale=1.0, what="scores")
    for field in FIELDS:
        assert_agree(getattr(pred_b.densepose, field)[match], getattr(pred_a.densepose, field), p, field)


# --- the prepared model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", [True, False], ids=["decoder", "legacy"])
def test_prepared_model_gives_the_unprepared_outputs(decoder: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(decoder)
    prepared = prepare_for_inference(copy.deepcopy(model))
    calls: dict[str, int] = {"nnpack": 0, "region": 0, "gather": 0}

    def counting(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counting("nnpack", torch._nnpack_spatial_convolution))
    monkeypatch.setattr(Decoder, "forward_region", counting("region", Decoder.forward_region))
    monkeypatch.setattr("densehuman.models.poolers.roi_align_gather", counting("gather", roi_align_gather))
    assert_same_outputs(model, prepared, textured_image())
    if fusion.nnpack_available():
        assert calls["nnpack"] > 0
    assert calls["gather"] > 0
    assert (calls["region"] > 0) == decoder
    assert prepared.inference_only
    assert not model.inference_only


@pytest.mark.parametrize("mistake", ["RoIAlign half a pixel off", "two channels swapped in a folded norm"])
def test_the_agreement_check_catches_small_mistakes(mistake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    prepared = prepare_for_inference(copy.deepcopy(model))
    if mistake == "RoIAlign half a pixel off":
        real = roi_align_gather

        def shifted(feature: Tensor, rois: Tensor, size: int, scale: float, ratio: int, aligned: bool) -> Tensor:
            return real(feature, rois, size, scale, ratio, not aligned)

        monkeypatch.setattr("densehuman.models.poolers.roi_align_gather", shifted)
    else:
        conv = prepared.backbone.res3[0].conv2  # type: ignore[index, union-attr]
        with torch.no_grad():
            conv.bias[[0, 1]] = conv.bias[[1, 0]].clone()
    with pytest.raises(AssertionError):
        assert_same_outputs(model, prepared, textured_image())


def test_channels_last_and_each_step_alone_agree() -> None:
    model = tiny_model()
    image = textured_image()
    off = {"channels_last": False, "fused_backbone": False, "winograd": False, "gather": False, "regions": False}
    names = {"gather": "gather_pooling", "regions": "decode_regions"}
    plain = prepare_for_inference(copy.deepcopy(model), **{names.get(k, k): v for k, v in off.items()})
    for step in off:
        one = {names.get(k, k): k == step for k in off}
        assert_same_outputs(plain, prepare_for_inference(copy.deepcopy(model), **one), image)


def test_prepare_is_idempotent_and_changes_the_state_dict_layout() -> None:
    model = prepare_for_inference(tiny_model())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    image = textured_image()
    _, before = outputs(model, image)
    assert prepare_for_inference(model) is model
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # not folded twice
    _, after = outputs(model, image)
    assert torch.equal(before.boxes, after.boxes)
    # Folded: conv biases instead of detectron2's norm buffers, so this is not a checkpoint
    assert "backbone.res2.0.conv1.bias" in state
    assert not any(".norm." in k for k in state if k.startswith("backbone."))
    assert not any(k.endswith("fused_weight") for k in state)


def test_prepared_model_refuses_to_train() -> None:
    model = prepare_for_inference(tiny_model())
    with pytest.raises(RuntimeError, match="prepared for inference"):
        model.train()
    assert not model.training
    model.eval()  # still fine
    target = Targets(torch.tensor([[10.0, 10, 50, 60]]), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="train"):
        model([textured_image(128, 96)], [target])


def test_predictor_optimize_flag(tmp_path: Path) -> None:
    model = tiny_model()
    config = Config(name="tiny", model=TINY_CONFIG)
    checkpoint = save_checkpoint(tmp_path, 0, model, to_dict(config))
    image = textured_image().permute(1, 2, 0).numpy()
    results = {}
    for optimize in (False, True):
        predictor = Predictor(checkpoint, min_score=0.0, input_size=(256, 256), optimize=optimize)
        assert predictor.model.inference_only == optimize
        results[optimize] = predictor(image)
    plain, fast = results[False].people, results[True].people
    assert len(plain) == len(fast) > 0
    for a, b in zip(plain, fast, strict=True):
        assert_agree(torch.tensor(b.box), torch.tensor(a.box), model, "box")
        assert_float32_close(b.score, a.score, *astuple(reduction_profile(model)), scale=1.0, what="score")
        assert (a.chart.labels == b.chart.labels).mean() >= 0.99


@pytest.mark.parametrize(("dilation", "groups"), [(1, 1), (2, 2)])
def test_fused_resnet_forward_equals_resnet_forward(dilation: int, groups: int) -> None:
    if not fusion.mkldnn_fusion_available():
        pytest.skip("no oneDNN fused operators in this PyTorch")
    with seeded(0):
        net = ResNet(
            50, stem_out_channels=8, res2_out_channels=16, width_per_group=4, num_groups=groups, res5_dilation=dilation
        ).eval()
    for module in net.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
        if hasattr(module, "fold_norm"):
            module.fold_norm()
    x = torch.randn(1, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = net(x)
        fused = fusion.fused_resnet_forward(net, x)
    # also res2..res4, which the next stage reads: a residual sum written into them would show here
    assert set(fused) == set(expected)
    for name in expected:
        assert_agree(fused[name], expected[name], net, name)


# --- the kernels --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not fusion.nnpack_available(), reason="this PyTorch has no NNPACK")
@pytest.mark.parametrize(
    ("shape", "kernel", "channels_last"),
    [((1, 8, 48, 40), 3, False), ((9, 8, 14, 14), 3, True), ((3, 4, 30, 30), 5, False)],
    ids=["one-image", "stacked-batch", "5x5"],
)
def test_winograd_conv2d_equals_conv2d(
    shape: tuple[int, int, int, int], kernel: int, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(6, shape[1], kernel, kernel, generator=g), torch.randn(6, generator=g)
    calls = []
    real = torch._nnpack_spatial_convolution
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", lambda *a: calls.append(a[0].shape) or real(*a))
    with torch.no_grad():
        out = winograd_conv2d(x, weight, bias, kernel // 2)
    assert calls == [(1, shape[1], shape[0] * (shape[2] + kernel // 2), shape[3])] if shape[0] > 1 else len(calls) == 1
    expected = F.conv2d(x, weight, bias, padding=kernel // 2)
    assert out.shape == expected.shape
    assert_float32_close(out, expected, reduction_length=shape[1] * kernel**2, factor=WINOGRAD_FACTOR)
    # With autograd it is F.conv2d, and gradients flow.
    x.requires_grad_(True)
    winograd_conv2d(x, weight, bias, kernel // 2).sum().backward()
    assert x.grad is not None
    assert len(calls) == 1


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_conv2d_equals_conv2d_with_nchw_output(channels_last: bool, stride: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 12, 9, 7, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 12, 1, 1, generator=g)
    for bias in (None, torch.randn(5, generator=g)):
        with torch.no_grad():
            out = pointwise_conv2d(x, weight, bias, stride)
        assert out.is_contiguous()
        assert_float32_close(out, F.conv2d(x, weight, bias, stride=stride), reduction_length=12)
    with torch.no_grad():  # a branch with no RoI in the image: an empty batch, shaped as F.conv2d shapes it
        empty = pointwise_conv2d(x[:0], weight, None, stride)
    assert empty.shape == F.conv2d(x[:0], weight, None, stride=stride).shape


def random_rois(num: int, images: int, seed: int = 0) -> Tensor:
    """(num, 5) RoIs over a 120 x 160 image: inside, across and beyond the edges, empty and tiny ones."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * torch.tensor([180.0, 140.0]) - 20
    boxes = torch.cat([xy, xy + torch.rand(num, 2, generator=g) * 90], dim=1)
    boxes[:4, 2:] = boxes[:4, :2]  # empty
    boxes[4:8, 2:] = boxes[4:8, :2] + 0.3  # smaller than a cell
    return torch.cat([torch.randint(0, images, (num, 1), generator=g).float(), boxes], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_roi_align_gather_equals_torchvision(aligned: bool, sampling_ratio: int) -> None:
    feature = torch.randn(2, 6, 30, 40, generator=torch.Generator().manual_seed(1))
    rois = random_rois(200, 2)
    for size in (1, 7, 14):
        expected = roi_align(feature, rois, (size, size), 0.25, sampling_ratio, aligned)
        for layout in (torch.contiguous_format, torch.channels_last):
            out = roi_align_gather(feature.contiguous(memory_format=layout), rois, size, 0.25, sampling_ratio, aligned)
            # bilinear samples: sampling_ratio**2 points of 4 taps each
            assert_float32_close(out, expected, 4 * sampling_ratio**2, what=f"size {size}")
    assert roi_align_gather(feature, rois[:0], 7, 0.25, 2, aligned).shape == (0, 6, 7, 7)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align_gather(feature, rois, 7, 0.25, 0, aligned)


@pytest.mark.parametrize("aligned", [False, True])
def test_footprint_holds_every_cell_roi_align_reads(aligned: bool) -> None:
    pooler = RoIPooler(14, [0.25], sampling_ratio=2, aligned=aligned)
    rois = random_rois(60, 1, seed=2)
    windows = pooler.footprint(rois[:, 1:], 30, 40)
    for roi, (r0, r1, c0, c1) in zip(rois, windows.tolist(), strict=True):
        feature = torch.zeros(1, 1, 30, 40, requires_grad=True)
        roi_align(feature, roi[None], (14, 14), 0.25, 2, aligned).sum().backward()
        assert feature.grad is not None
        read = feature.grad[0, 0] != 0
        inside = torch.zeros_like(read)
        inside[r0:r1, c0:c1] = True
        assert not bool((read & ~inside).any()), (roi.tolist(), (r0, r1, c0, c1))
        assert 0 <= r0 <= r1 <= 30
        assert 0 <= c0 <= c1 <= 40


def test_decoder_forward_region_equals_forward_on_any_window() -> None:
    with seeded(0):
        decoder = Decoder(("p2", "p3", "p4", "p5"), (8,) * 4, (4, 8, 16, 32), conv_dims=8, num_classes=6).eval()
    features = [torch.randn(2, 8, 64 // 2**k, 96 // 2**k, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        full = decoder(features)
        assert decoder.output_size(features) == (64, 96)
        windows = [(0, 64, 0, 96), (0, 1, 0, 1), (63, 64, 95, 96), (5, 6, 40, 70)]
        for _ in range(40):
            r0, c0 = int(torch.randint(0, 64, (1,), generator=g)), int(torch.randint(0, 96, (1,), generator=g))
            r1 = int(torch.randint(r0 + 1, 65, (1,), generator=g))
            c1 = int(torch.randint(c0 + 1, 97, (1,), generator=g))
            windows.append((r0, r1, c0, c1))
        for r0, r1, c0, c1 in windows:
            part = decoder.forward_region(features, (r0, r1), (c0, c1))
            assert_agree(part, full[:, :, r0:r1, c0:c1], decoder, str((r0, r1, c0, c1)))
    with seeded(0):
        normed = Decoder(("p2", "p3"), (8, 8), (4, 8), conv_dims=32, num_classes=6, norm="GN")
    assert not normed.supports_regions()
    with pytest.raises(ValueError, match="norm"):
        normed.forward_region(features[:2], (0, 4), (0, 4))


def test_merge_windows_known_answers() -> None:
    # mostly overlapping windows merge; a far one stays apart; empty windows are dropped
    assert merge_windows([(0, 10, 0, 10), (2, 12, 2, 12), (100, 110, 100, 110), (3, 3, 0, 9)], margin=0) == [
        (0, 12, 0, 12),
        (100, 110, 100, 110),
    ]
    # a small overlap: computing it twice is cheaper than the union's empty corners
    assert len(merge_windows([(0, 10, 0, 10), (5, 15, 5, 15)], margin=0)) == 2
    # merging would compute a large empty area: kept apart
    assert len(merge_windows([(0, 10, 0, 10), (0, 10, 50, 60)], margin=0)) == 2
    # ... unless the layers' margins make the separate windows cost more
    assert merge_windows([(0, 10, 0, 10), (0, 10, 12, 22)], margin=4) == [(0, 10, 0, 22)]
    many = [(k, k + 2, 3 * k, 3 * k + 2) for k in range(40)]
    assert merge_windows(many) == [(0, 41, 0, 119)]


def test_densepose_branch_decodes_windows_like_the_whole_map() -> None:
    model = tiny_model()
    branch = model.extra_heads[0]
    assert isinstance(branch, DensePoseBranch)
    image = textured_image()
    with torch.no_grad():
        features = model.features(model.preprocess([image, image.flip(2)])[0])
        boxes = [
            torch.tensor([[0.0, 0, 30, 40], [150, 200, 192, 256], [60, 70, 61, 71], [10, 100, 180, 110]]),
            torch.zeros(0, 4),
        ]
        whole = branch(features, boxes)
        branch.decode_regions = True
        windowed = branch(features, boxes)
    assert len(windowed) == 4
    for field in FIELDS:
        assert_agree(getattr(windowed, field), getattr(whole, field), model, field)


def test_chart_predictor_fused_layers_equal_the_separate_ones() -> None:
    with seeded(0):
        predictor = ChartPredictor(16, 15, uv_confidence="indep_aniso", segm_confidence=True)
    x = torch.randn(3, 16, 7, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        separate = predictor(x)
        predictor.fuse_layers()
        fused = predictor(x)
    names = ["coarse_segm", "fine_segm", "u", "v", "sigma_2", "kappa_u", "kappa_v"]
    for name in [*names, "fine_segm_confidence", "coarse_segm_confidence"]:
        a, b = getattr(fused, name), getattr(separate, name)
        assert isinstance(a, Tensor)
        assert isinstance(b, Tensor)
        assert a.shape == b.shape == (3, b.shape[1], 28, 28)
        assert_agree(a, b, predictor, name)
    assert not any("fused" in k for k in predictor.state_dict())
    # With autograd on, the separate layers run: every one gets a gradient.
    out = predictor(x)
    sum(getattr(out, name).sum() for name in names).backward()
    assert predictor.kappa_v_lowres.weight.grad is not None
