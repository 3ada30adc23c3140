"""The generic two-stage detector: anchors, box coding, matching, ResNet/timm backbones, FPN, RPN, box head, the
detector's preprocessing, training losses, RoI-branch hook, prediction and a tiny overfit. The match with detectron2's
outputs on the model-zoo fixtures is in tests/engine/test_detectron2_import.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from densehuman.models.anchors import (
    DEFAULT_SCALE_CLAMP,
    Box2BoxTransform,
    DefaultAnchorGenerator,
    Matcher,
    match_boxes,
    pairwise_iou,
    subsample_labels,
)
from densehuman.models.backbones import ResNet, TimmBackbone
from densehuman.models.box_head import BoxHead, fast_rcnn_inference_single_image
from densehuman.models.detector import Detector, detectron2_key
from densehuman.models.instances import Targets
from densehuman.models.necks import FPN
from densehuman.models.poolers import RoIPooler
from densehuman.models.rpn import RPN, find_top_rpn_proposals

pytestmark = pytest.mark.numerics

TINY = {"stem_out_channels": 8, "res2_out_channels": 16, "width_per_group": 4}


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Module initialization uses torch's global RNG: seed it without leaking the state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class RecordingBranch(nn.Module):
    """A stand-in RoI branch: a learnable scalar loss; it records what the detector hands it."""

    name = "densepose"  # its outputs go to Prediction.densepose
    in_features = ("p2",)

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: dict[str, Any] = {}

    def losses(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        matched: list[Tensor],
        targets: list[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        self.seen = {"proposals": proposals, "matched": matched, "targets": targets, "generator": generator}
        return {"loss_recording": self.scale * features["p2"].mean() * 0 + self.scale}

    def predict(self, features: dict[str, Tensor], boxes: list[Tensor]) -> list[Any]:
        return [("boxes", len(b)) for b in boxes]


def tiny_detector(
    extra: tuple[nn.Module, ...] = (),
    detections: int = 100,
    seed: int = 0,
    fc_dim: int = 32,
    rpn_batch: int = 256,
    timm_name: str | None = None,
) -> Detector:
    """ResNet-50 of tiny width (or a timm model) + 16-channel FPN + small heads."""
    with seeded(seed):
        backbone = ResNet(50, **TINY) if timm_name is None else TimmBackbone(timm_name)
        neck = FPN(backbone.output_shapes(), out_channels=16)
        shapes = neck.output_shapes()
        rpn = RPN(
            tuple(shapes),
            16,
            [s for _, s in shapes.values()],
            pre_nms_topk=(300, 200),
            post_nms_topk=(100, 50),
            batch_size_per_image=rpn_batch,
        )
        box_head = BoxHead(
            ("p2", "p3", "p4", "p5"),
            16,
            (4, 8, 16, 32),
            fc_dim=fc_dim,
            batch_size_per_image=64,
            detections_per_image=detections,
        )
        return Detector(backbone, neck, rpn, box_head, extra_heads=extra)  # type: ignore[arg-type]


def synthetic_image(box: tuple[int, int, int, int], size: tuple[int, int] = (128, 96)) -> Tensor:
    """A dark uint8 RGB image (H, W = ``size``) with one bright textured rectangle at ``box`` (xyxy).

    The tests keep every batch at 128 x 96 after padding: oneDNN spends about a second on each new input shape.
    """
    image = torch.full((3, *size), 20, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    yy, xx = torch.meshgrid(torch.arange(y0, y1), torch.arange(x0, x1), indexing="ij")
    image[0, y0:y1, x0:x1] = 200
    image[1, y0:y1, x0:x1] = (120 + 60 * ((xx // 4 + yy // 4) % 2)).to(torch.uint8)
    image[2, y0:y1, x0:x1] = 60
    return image


def one_box_targets(box: tuple[int, int, int, int]) -> Targets:
    return Targets(torch.tensor([box], dtype=torch.float32), torch.zeros(1, dtype=torch.int64))


# ----------------------------------------------------------------------------------------------------------------
# anchors, box coding, matching


def test_anchors_equal_detectron2_formula() -> None:
    gen = DefaultAnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),), strides=(4, 8), offset=0.0)
    assert gen.num_anchors == [3, 3]
    grid = [(2, 3), (1, 2)]
    anchors = gen.grid_anchors(grid)
    for level, (size, stride) in enumerate([(32, 4), (64, 8)]):
        cells = []
        for ratio in (0.5, 1.0, 2.0):
            w = math.sqrt(size**2 / ratio)
            h = ratio * w
            cells.append([-w / 2, -h / 2, w / 2, h / 2])
        height, width = grid[level]
        expected = [
            [c[0] + x, c[1] + y, c[2] + x, c[3] + y]
            for y in range(0, height * stride, stride)
            for x in range(0, width * stride, stride)
            for c in cells
        ]
        np.testing.assert_allclose(anchors[level].numpy(), np.array(expected), rtol=0, atol=1e-5)
    # No Detectron1/torchvision rounding: the 0.5-ratio anchor of size 32 is 45.25 x 22.63, centred on (0, 0).
    np.testing.assert_allclose(anchors[0][0].numpy(), [-22.627417, -11.313708, 22.627417, 11.313708], atol=1e-5)
    assert "cell_anchors_0" not in gen.state_dict()  # detectron2 checkpoints carry no anchors


def test_box_coder_round_trip_and_clamp() -> None:
    g = torch.Generator().manual_seed(0)
    src = torch.rand(50, 2, generator=g) * 100
    src = torch.cat([src, src + 5 + torch.rand(50, 2, generator=g) * 50], dim=1)
    tgt = torch.rand(50, 2, generator=g) * 100
    tgt = torch.cat([tgt, tgt + 5 + torch.rand(50, 2, generator=g) * 50], dim=1)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        coder = Box2BoxTransform(weights)
        deltas = coder.get_deltas(src, tgt)
        torch.testing.assert_close(coder.apply_deltas(deltas, src), tgt, atol=1e-3, rtol=1e-4)
    coder = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # 20 x 40, centre (20, 40)
    out = coder.apply_deltas(torch.tensor([[0.0, 0.0, 50.0, -1.0]]), box)[0]
    scale = math.exp(DEFAULT_SCALE_CLAMP)  # 62.5
    assert scale == pytest.approx(62.5)
    torch.testing.assert_close(out[2] - out[0], torch.tensor(20.0 * scale))
    torch.testing.assert_close(out[3] - out[1], torch.tensor(40.0 * math.exp(-1.0)))
    torch.testing.assert_close((out[0] + out[2]) / 2, torch.tensor(20.0))
    # Class-specific deltas (N, K * 4) decode per class.
    two = coder.apply_deltas(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]), box)
    torch.testing.assert_close(two[0, :4], box[0])
    torch.testing.assert_close(two[0, 4:], box[0] + torch.tensor([20.0, 0.0, 20.0, 0.0]))


def test_matcher_thresholds_and_low_quality_matches() -> None:
    # 2 GT x 4 predictions
    iou = torch.tensor([[0.8, 0.5, 0.1, 0.0], [0.0, 0.2, 0.25, 0.25]])
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(iou)
    assert matches.tolist() == [0, 0, 1, 1]
    # 0.8 foreground; 0.5 ignored; GT 1's best (0.25, tied twice) become foreground despite the low IoU.
    assert labels.tolist() == [1, -1, 1, 1]
    _, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=False)(iou)
    assert labels.tolist() == [1, -1, 0, 0]
    matches, labels = Matcher([0.5], [0, 1])(torch.zeros(0, 3))
    assert matches.tolist() == [0, 0, 0]
    assert labels.tolist() == [0, 0, 0]
    # Empty and disjoint boxes give IoU 0, not NaN.
    assert pairwise_iou(torch.tensor([[0.0, 0, 0, 0]]), torch.tensor([[0.0, 0, 0, 0], [5.0, 5, 9, 9]])).tolist() == [
        [0.0, 0.0]
    ]


def test_crowd_boxes_are_never_matched_and_mask_background() -> None:
    gt = torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 100, 100]])
    crowd = torch.tensor([False, True])
    boxes = torch.tensor([[0.0, 0, 10, 10], [60.0, 60, 70, 70], [200.0, 200, 210, 210]])
    matches, labels = match_boxes(Matcher([0.5], [0, 1]), gt, boxes, crowd)
    assert matches[0] == 0
    assert labels.tolist() == [1, -1, 0]  # inside the crowd box: ignored instead of background


def test_subsample_labels_counts_and_generator() -> None:
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = subsample_labels(labels, 20, 0.25, 0, torch.Generator().manual_seed(3))
    assert len(pos) == 5
    assert len(neg) == 15
    assert bool((labels[pos] == 1).all())
    assert bool((labels[neg] == 0).all())
    pos2, neg2 = subsample_labels(labels, 20, 0.25, 0, torch.Generator().manual_seed(3))
    assert torch.equal(pos, pos2)
    assert torch.equal(neg, neg2)
    pos, neg = subsample_labels(torch.tensor([1, 1, 0]), 20, 0.5, 0)
    assert (len(pos), len(neg)) == (2, 1)


# ----------------------------------------------------------------------------------------------------------------
# backbones and FPN


def test_resnet50_shapes_strides_and_detectron2_names() -> None:
    with seeded():
        net = ResNet(50, **TINY)
    assert net.output_shapes() == {"res2": (16, 4), "res3": (32, 8), "res4": (64, 16), "res5": (128, 32)}
    out = net(torch.zeros(1, 3, 128, 96))
    for name, (channels, stride) in net.output_shapes().items():
        assert tuple(out[name].shape) == (1, channels, 128 // stride, 96 // stride)
    names = dict(net.state_dict())
    for key in ("stem.conv1.weight", "stem.conv1.norm.running_var", "res2.0.shortcut.norm.bias", "res5.2.conv3.weight"):
        assert key in names
    assert "res2.1.shortcut.weight" not in names
    assert "stem.conv1.bias" not in names
    # Stride in the 1x1 conv (caffe style), channels from width_per_group.
    assert net.res3[0].conv1.stride == (2, 2)
    assert net.res3[0].conv2.stride == (1, 1)
    assert net.res2[0].conv1.stride == (1, 1)
    assert net.res3[0].conv2.weight.shape[0] == 2 * 4
    assert len(ResNet(101, **TINY).res4) == 23


def test_frozen_bn_and_freeze_at() -> None:
    with seeded():
        net = ResNet(50, **TINY, freeze_at=2)
    params = dict(net.named_parameters())
    assert not any(".norm." in name for name in params)  # FrozenBN holds buffers only
    assert not params["stem.conv1.weight"].requires_grad
    assert not params["res2.2.conv3.weight"].requires_grad
    assert params["res3.0.conv1.weight"].requires_grad
    assert all(p.requires_grad for p in ResNet(50, **TINY, freeze_at=0).parameters())
    assert not any(p.requires_grad for p in ResNet(50, **TINY, freeze_at=5).parameters())
    before = net.res3[0].conv1.norm.running_mean.clone()
    net.train()
    net(torch.randn(1, 3, 128, 96))["res5"].sum().backward()
    assert torch.equal(before, net.res3[0].conv1.norm.running_mean)  # train mode does not update statistics
    assert params["stem.conv1.weight"].grad is None
    assert params["res3.0.conv1.weight"].grad is not None


def test_timm_backbone_shapes() -> None:
    with seeded():
        net = TimmBackbone("resnet18", pretrained=False)
    assert net.output_shapes() == {"res2": (64, 4), "res3": (128, 8), "res4": (256, 16), "res5": (512, 32)}
    out = net(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 64, 16, 24),
        "res3": (1, 128, 8, 12),
        "res4": (1, 256, 4, 6),
        "res5": (1, 512, 2, 3),
    }
    fpn = FPN(net.output_shapes(), out_channels=8)
    assert {k: tuple(v.shape[1:]) for k, v in fpn(out).items()}["p6"] == (8, 1, 2)


def test_fpn_outputs_names_and_p6() -> None:
    shapes = {"res2": (16, 4), "res3": (32, 8), "res4": (64, 16), "res5": (128, 32)}
    with seeded():
        fpn = FPN(shapes, out_channels=8)
    assert fpn.output_shapes() == {"p2": (8, 4), "p3": (8, 8), "p4": (8, 16), "p5": (8, 32), "p6": (8, 64)}
    assert {k for k in fpn.state_dict() if k.endswith("weight")} == {
        f"fpn_{kind}{k}.weight" for kind in ("lateral", "output") for k in range(2, 6)
    }
    g = torch.Generator().manual_seed(0)
    feats = {name: torch.randn(1, c, 64 // s, 64 // s, generator=g) for name, (c, s) in shapes.items()}
    out = fpn(feats)
    assert [tuple(v.shape) for v in out.values()] == [
        (1, 8, 16, 16),
        (1, 8, 8, 8),
        (1, 8, 4, 4),
        (1, 8, 2, 2),
        (1, 8, 1, 1),
    ]
    torch.testing.assert_close(out["p6"], out["p5"][..., ::2, ::2])
    # The top of the pyramid depends only on res5: p5 = output(lateral(res5)).
    torch.testing.assert_close(out["p5"], fpn.fpn_output5(fpn.fpn_lateral5(feats["res5"])))
    with pytest.raises(ValueError, match="double"):
        FPN({"a": (4, 4), "b": (4, 16)}, in_features=("a", "b"))


# ----------------------------------------------------------------------------------------------------------------
# RPN / box head pieces


def test_find_top_rpn_proposals_per_level_topk_clip_and_nms() -> None:
    boxes_l0 = torch.tensor([[[0.0, 0, 10, 10], [1.0, 1, 11, 11], [-5.0, -5, 20, 20], [30.0, 30, 30, 40]]])
    logits_l0 = torch.tensor([[4.0, 3.0, 2.0, 9.0]])
    boxes_l1 = torch.tensor([[[0.0, 0, 10, 10], [40.0, 40, 60, 60]]])
    logits_l1 = torch.tensor([[1.0, 0.5]])
    boxes, scores = find_top_rpn_proposals(
        [boxes_l0, boxes_l1], [logits_l0, logits_l1], [(50, 50)], 0.5, 3, 10, 0.0, False
    )
    # Level 0 keeps its top 3 (9, 4, 3): the empty box (width 0) goes, box 1 is suppressed by box 0 (IoU 0.68).
    # Level 1 is suppressed separately: its copy of box 0 survives. Its second box is clipped to the image.
    assert scores[0].tolist() == [4.0, 1.0, 0.5]
    assert boxes[0].tolist() == [[0.0, 0, 10, 10], [0.0, 0, 10, 10], [40.0, 40, 50, 50]]


def test_pooler_assigns_levels_like_detectron2() -> None:
    pooler = RoIPooler(2, (1 / 4, 1 / 8, 1 / 16, 1 / 32), sampling_ratio=2, aligned=False)
    sides = torch.tensor([10.0, 111.0, 112.0, 224.0, 447.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros_like(sides), torch.zeros_like(sides), sides, sides], dim=1)
    assert pooler.level_of(boxes).tolist() == [0, 0, 1, 2, 2, 3, 3]
    # Each level map is constant = its index (maps of a 512 x 512 image): the pooled value tells the level used.
    maps = [torch.full((1, 1, 512 // 2 ** (k + 2), 512 // 2 ** (k + 2)), float(k)) for k in range(4)]
    pooled = pooler(maps, [boxes[1:6] + 8])
    assert pooled.shape == (5, 1, 2, 2)
    assert pooled[:, 0].flatten(1).tolist() == [[v] * 4 for v in (0.0, 1.0, 2.0, 2.0, 3.0)]


def test_fast_rcnn_inference_filters_clips_and_limits() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11], [20.0, 20, 80, 30], [5.0, 5, 5, 9]])
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    out_boxes, out_scores, out_classes = fast_rcnn_inference_single_image(boxes, probs, (50, 40), 0.05, 0.5, 100)
    # NMS drops box 1; box 2 is clipped to x <= 40; the empty box 3 is dropped.
    assert out_scores.tolist() == pytest.approx([0.9, 0.6])
    assert out_boxes.tolist() == [[0.0, 0, 10, 10], [20.0, 20, 40, 30]]
    assert out_classes.tolist() == [0, 0]
    _, scores, _ = fast_rcnn_inference_single_image(boxes, probs, (50, 40), 0.05, 0.5, 1)
    assert len(scores) == 1


# ----------------------------------------------------------------------------------------------------------------
# the detector


def test_preprocess_bgr_normalization_and_padding() -> None:
    det = tiny_detector()
    a = torch.zeros(3, 50, 70, dtype=torch.uint8)
    a[0] = 255  # pure red in RGB
    b = torch.full((3, 64, 33), 100.0)
    batch, sizes = det.preprocess([a, b])
    assert sizes == [(50, 70), (64, 33)]
    assert tuple(batch.shape) == (2, 3, 64, 96)
    # BGR order: red lands in channel 2, minus detectron2's means.
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([-103.530, -116.280, 255 - 123.675]))
    assert float(batch[0, :, 50:, :].abs().sum()) == 0.0  # padding is zero after normalization
    assert float(batch[1, :, :, 33:].abs().sum()) == 0.0


def test_training_forward_losses_and_backward() -> None:
    branch = RecordingBranch()
    det = tiny_detector(extra=(branch,)).train()
    images = [synthetic_image((20, 30, 90, 110)), synthetic_image((40, 10, 90, 60), size=(96, 96))]
    targets = [
        Targets(torch.tensor([[20.0, 30, 90, 110], [0, 0, 5, 5]]), torch.tensor([0, 0])),
        one_box_targets((40, 10, 90, 60)),
    ]
    losses = det(images, targets, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_recording"}
    assert all(bool(torch.isfinite(v)) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()  # type: ignore[union-attr]
    for name in ("rpn.rpn_head.conv.weight", "box_head.predictor.bbox_pred.weight", "backbone.res3.0.conv1.weight"):
        grad = dict(det.named_parameters())[name].grad
        assert grad is not None
        assert float(grad.abs().sum()) > 0
    assert det.backbone.stem.conv1.weight.grad is None  # frozen
    # The branch saw foreground proposals only, each with the index of its GT (IoU >= 0.5 by construction).
    for proposals, matched, target in zip(branch.seen["proposals"], branch.seen["matched"], targets, strict=True):
        assert len(proposals) == len(matched) > 0
        iou = pairwise_iou(proposals, target.boxes)[torch.arange(len(matched)), matched]
        assert bool((iou >= 0.5).all())
    # Same generator state, same sampling: identical losses.
    again = det(images, targets, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(losses[k].detach(), again[k].detach()) for k in losses)


def test_image_without_boxes_gives_finite_zero_box_regression() -> None:
    det = tiny_detector().train()
    empty = Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    losses = det([synthetic_image((0, 0, 1, 1))], [empty], generator=torch.Generator().manual_seed(0))
    values = {k: float(v.detach()) for k, v in losses.items()}
    assert all(math.isfinite(v) for v in values.values())
    assert values["loss_rpn_loc"] == 0.0
    assert values["loss_box_reg"] == 0.0
    assert values["loss_rpn_cls"] > 0.0


def test_predict_sorted_inside_image_and_limited() -> None:
    branch = RecordingBranch()
    det = tiny_detector(extra=(branch,), detections=7).eval()
    images = [synthetic_image((20, 30, 90, 110)), synthetic_image((10, 10, 60, 50), size=(112, 90))]
    with pytest.raises(RuntimeError, match="train"):
        det(images, [one_box_targets((0, 0, 5, 5))] * 2)
    predictions = det.predict(images, score_threshold=0.0)
    for prediction, image in zip(predictions, images, strict=True):
        n = len(prediction.scores)
        assert 0 < n <= 7
        assert prediction.boxes.shape == (n, 4)
        assert bool((prediction.scores[:-1] >= prediction.scores[1:]).all())
        height, width = image.shape[1:]
        b = prediction.boxes
        assert bool((b[:, 0] >= 0).all() and (b[:, 1] >= 0).all())
        assert bool((b[:, 2] <= width).all() and (b[:, 3] <= height).all())
        assert bool(((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all())
        assert prediction.densepose == ("boxes", n)  # the branch output lands in the field of its name
    assert all(len(p.scores) == 0 for p in det.predict(images, score_threshold=1.0))


def test_overfit_two_images_losses_fall() -> None:
    # A BatchNorm backbone: an untrained FrozenBN ResNet-50 has activations in the thousands and diverges.
    det = tiny_detector(seed=1, fc_dim=64, rpn_batch=64, timm_name="test_resnet").train()
    boxes = [(16, 32, 80, 112), (40, 16, 90, 64)]
    images = [synthetic_image(boxes[0]), synthetic_image(boxes[1])]
    targets = [one_box_targets(b) for b in boxes]
    params = [p for p in det.parameters() if p.requires_grad]
    # lr 0.02 makes the trajectory chaotic: other CPUs' rounding then end it anywhere (once with no detection).
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    history = []
    for _ in range(80):
        losses = det(images, targets, generator=generator)
        total = sum(losses.values())
        assert isinstance(total, Tensor)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    # Ratios seen on four instruction-set settings: rpn_cls 0.09, rpn_loc 0.54-0.62, cls 0.22-0.34.
    first = {k: np.mean([h[k] for h in history[:3]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-10:]]) for k in history[0]}
    assert last["loss_rpn_cls"] < 0.3 * first["loss_rpn_cls"]
    assert last["loss_rpn_loc"] < 0.9 * first["loss_rpn_loc"]
    assert last["loss_cls"] < 0.6 * first["loss_cls"]
    # loss_box_reg starts near 0 (the appended GT boxes are the only foreground) and rises as the RPN finds more
    # foreground: it is not monotone. The detections show that the regression learned.
    det.eval()
    for prediction, target in zip(det.predict(images), targets, strict=True):
        assert float(pairwise_iou(prediction.boxes[:1], target.boxes)[0, 0]) > 0.5


def test_detectron2_key_mapping() -> None:
    assert detectron2_key("backbone.bottom_up.res2.0.conv1.norm.weight") == "backbone.res2.0.conv1.norm.weight"
    assert detectron2_key("backbone.fpn_lateral3.bias") == "neck.fpn_lateral3.bias"
    assert detectron2_key("proposal_generator.rpn_head.conv.weight") == "rpn.rpn_head.conv.weight"
    assert detectron2_key("roi_heads.box_head.fc2.bias") == "box_head.head.fc2.bias"
    assert detectron2_key("roi_heads.box_predictor.cls_score.weight") == "box_head.predictor.cls_score.weight"
    assert detectron2_key("roi_heads.densepose_head.body_conv_fcn1.weight") is None
    names = set(tiny_detector().state_dict())
    assert {
        "neck.fpn_output5.weight",
        "rpn.rpn_head.anchor_deltas.bias",
        "box_head.predictor.bbox_pred.weight",
    } <= names
