"""The Parsing R-CNN branch: GCE head and its switches, targets cropped at the rounded proposal, the paste, the
decoupled RoI batch, the loss, flip test-time augmentation, and a two-branch detector that learns."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densehuman.config import ParsingHeadConfig
from densehuman.data.parsing_classes import CIHP, MHP
from densehuman.models.branches.parsing.branch import ParsingBranch
from densehuman.models.branches.parsing.postprocess import box_labels, parsing_at_box, paste_parsing
from densehuman.models.branches.parsing.predictor import ParsingPredictor
from densehuman.models.branches.parsing.targets import flip_logits, parsing_targets
from densehuman.models.build import build_model, build_parsing_branch
from densehuman.models.instances import ParsingMaps, Targets
from densehuman.models.layers.aspp import ASPP
from densehuman.models.layers.gce import GCEHead
from densehuman.models.layers.nonlocal_block import NonLocalBlock2D
from densehuman.models.poolers import RoIPooler
from densehuman.models.zoo import preset

SHAPES = {"p2": (16, 4), "p3": (16, 8), "p4": (16, 16), "p5": (16, 32)}


def test_gce_head_is_the_official_layout_and_its_switches_remove_parts() -> None:
    head = GCEHead(256)  # the paper's: ASPP 5 x 256 -> 512, non-local 512 (inner 512), 4 x conv 512
    aspp = head.context
    assert isinstance(aspp, ASPP)
    dilations = [m.dilation[0] for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dilations == [6, 12, 18]
    assert aspp.project[0].in_channels == 5 * 256
    assert aspp.project[0].out_channels == 512
    assert not any(isinstance(m, nn.GroupNorm) for m in aspp.modules())  # no norm in the GCE convolutions
    assert isinstance(head.nonlocal_block, NonLocalBlock2D)
    assert head.nonlocal_block.inter_channels == 512
    assert math.isclose(head.nonlocal_block.scale, 512**-0.5)
    assert isinstance(head.nonlocal_block.W[1], nn.GroupNorm)
    assert len(head.after) == 4
    assert len(head.before) == 0
    # Parameters: ASPP (1x1 + 3 x 3x3 + pool 1x1 + projection), non-local (4 1x1 convs + GN), 4 x 3x3 convs.
    aspp_params = (256 * 256 + 256) * 2 + (256 * 256 * 9 + 256) * 3 + (5 * 256 * 512 + 512)
    nl_params = 4 * (512 * 512 + 512) + 2 * 512
    pbd_params = 4 * (512 * 512 * 9 + 512)
    assert sum(p.numel() for p in head.parameters()) == aspp_params + nl_params + pbd_params
    x = torch.randn(2, 256, 32, 32)
    assert head(x).shape == (2, 512, 32, 32)
    plain = GCEHead(256, aspp=False, use_nonlocal=False, num_convs_before=2, num_convs_after=0)
    assert not any(isinstance(m, (ASPP, NonLocalBlock2D)) for m in plain.modules())
    assert len(plain.before) == 2
    assert plain(x).shape == (2, 512, 32, 32)
    normed = GCEHead(64, conv_dim=64, aspp_dim=64, norm="GN")
    assert sum(isinstance(m, nn.GroupNorm) for m in normed.modules()) == 5 + 1 + 4  # ASPP, non-local, PBD


def test_predictor_reaches_128_from_any_roi_size() -> None:
    predictor = ParsingPredictor(64, 20, output_size=128)
    assert predictor(torch.randn(3, 64, 32, 32)).shape == (3, 20, 128, 128)  # deconv to 64, bilinear x2
    assert predictor(torch.randn(1, 64, 14, 14)).shape == (1, 20, 128, 128)  # the ERR ablation's 14 x 14


def test_targets_are_cropped_at_the_rounded_box_and_resized_nearest() -> None:
    labels = torch.arange(6 * 8, dtype=torch.uint8).reshape(1, 6, 8)
    box = torch.tensor([[1.4, 0.6, 5.5, 4.5]])  # rounds (half to even) to [1, 1, 6, 4]: rows 1..3, cols 1..5
    out = parsing_targets(labels, box, 4)
    rows = [1 + (i * 3) // 4 for i in range(4)]  # floor(i * crop / size): OpenCV's INTER_NEAREST
    cols = [1 + (j * 5) // 4 for j in range(4)]
    expected = torch.tensor([[r * 8 + c for c in cols] for r in rows])
    torch.testing.assert_close(out[0], expected)
    # Outside the image: clipped; nothing left: background.
    out = parsing_targets(labels.repeat(2, 1, 1), torch.tensor([[-5.0, -5.0, 2.0, 2.0], [10.0, 1.0, 12.0, 3.0]]), 2)
    torch.testing.assert_close(out[0], torch.tensor([[0, 1], [8, 9]]))
    assert int(out[1].abs().sum()) == 0


def test_paste_expands_the_box_by_the_padding_and_truncates() -> None:
    probs = np.zeros((3, 4, 4), np.float32)
    probs[2] = 1.0  # class 2 everywhere on the grid, background in the padding
    labels, (x0, y0) = box_labels(probs, np.array([10.0, 10.0, 30.0, 20.0]))
    # scale (4 + 2) / 4 = 1.5 about the centre (20, 15): [5, 7.5, 35, 22.5] -> int -> [5, 7, 35, 22]
    assert (x0, y0) == (5, 7)
    assert labels.shape == (22 - 7 + 1, 35 - 5 + 1)
    assert set(np.unique(labels)) == {0, 2}
    assert (labels[labels.shape[0] // 2, labels.shape[1] // 2]) == 2
    pasted = paste_parsing(probs, np.array([10.0, 10.0, 30.0, 20.0]), (18, 40))  # clipped at the bottom
    np.testing.assert_array_equal(pasted[7:18, 5:36], labels[:11])
    assert pasted[:7].sum() == 0
    assert pasted[:, :5].sum() == 0
    grid = parsing_at_box(probs, np.array([10.7, 10.2, 30.0, 20.0]), (9, 19))
    np.testing.assert_array_equal(
        grid, paste_parsing(probs, np.array([10.7, 10.2, 30.0, 20.0]), (40, 40))[10:19, 10:29]
    )


def _branch(seed: int = 0, rois: int = 16, classes: int = 20) -> ParsingBranch:
    torch.manual_seed(seed)
    permutation = CIHP.flip_permutation() if classes == 20 else np.arange(classes)
    return ParsingBranch(
        ("p2",),
        RoIPooler(8, [0.25], 2, False),
        GCEHead(16, conv_dim=16, aspp_dim=8, num_convs_after=1, norm="GN"),
        ParsingPredictor(16, classes, output_size=32),
        permutation.tolist(),
        rois_per_image=rois,
    )


def _targets(n: int, size: int = 64) -> Targets:
    boxes = torch.tensor([[4.0 + k, 4.0, 40.0 + k, 60.0] for k in range(n)])
    labels = torch.zeros((n, size, size), dtype=torch.uint8)
    labels[:, 10:50, 10:30] = 5
    labels[:, 10:50, 30:40] = 14
    return Targets(boxes, torch.zeros(n, dtype=torch.int64), parsing=ParsingMaps(labels, torch.ones(n, dtype=bool)))


def test_loss_is_the_weighted_cross_entropy_of_at_most_16_positives_per_image(monkeypatch: pytest.MonkeyPatch) -> None:
    branch = _branch()
    features = {"p2": torch.randn(2, 16, 16, 16)}
    targets = [_targets(3), _targets(1)]
    proposals = [t.boxes.repeat(10, 1) + 0.3 for t in targets]  # 30 and 10 proposals, all positive
    matched = [torch.arange(3).repeat(10), torch.zeros(10, dtype=torch.int64)]
    seen: list[int] = []
    real = parsing_targets

    def counting(labels: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
        seen.append(len(boxes))
        return real(labels, boxes, size)

    monkeypatch.setattr("densehuman.models.branches.parsing.branch.parsing_targets", counting)
    loss = branch.losses(features, proposals, matched, targets, torch.Generator().manual_seed(0))["loss_parsing"]
    assert seen == [16, 10]
    # Recompute it: the same proposals (same generator) through the branch, CE over all pixels, times 2.
    keep0 = branch._keep(proposals[0], matched[0], targets[0], torch.Generator().manual_seed(0))
    boxes = [proposals[0][keep0], proposals[1]]
    logits = branch(features, boxes)
    gt = torch.cat(
        [
            real(targets[0].parsing.labels[matched[0][keep0]], boxes[0], 32),  # type: ignore[union-attr]
            real(targets[1].parsing.labels[matched[1]], boxes[1], 32),  # type: ignore[union-attr]
        ]
    )
    torch.testing.assert_close(loss, 2.0 * F.cross_entropy(logits, gt))


def test_no_usable_proposal_gives_a_zero_loss_that_reaches_every_parameter() -> None:
    branch = _branch()
    features = {"p2": torch.randn(1, 16, 16, 16, requires_grad=True)}
    target = _targets(1)
    target.parsing.has[:] = False  # type: ignore[union-attr]
    loss = branch.losses(features, [target.boxes], [torch.zeros(1, dtype=torch.int64)], [target])["loss_parsing"]
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert all(p.grad is not None for p in branch.parameters())
    # A proposal below the foreground IoU is not used either.
    far = torch.tensor([[4.0, 40.0, 40.0, 96.0]])
    assert len(branch._keep(far, torch.zeros(1, dtype=torch.int64), _targets(1), None)) == 0


def test_flip_tta_averages_the_mirrored_probabilities_with_swapped_sides() -> None:
    branch = _branch().eval()
    image = torch.randn(1, 16, 16, 16)
    features, flipped = {"p2": image}, {"p2": image.flip(-1)}
    boxes = [torch.tensor([[8.0, 4.0, 40.0, 60.0]])]
    with torch.no_grad():
        plain = branch.predict(features, boxes)[0].probs
        tta = branch.predict(features, boxes, flipped=flipped, widths=[64])[0].probs
        mirrored = F.softmax(branch(flipped, [torch.tensor([[24.0, 4.0, 56.0, 60.0]])]), dim=1)
    torch.testing.assert_close(tta, (plain + flip_logits(mirrored, branch.flip_permutation)) / 2)
    torch.testing.assert_close(tta.sum(1), torch.ones_like(tta[:, 0]))
    perm = branch.flip_permutation
    assert (perm[14], perm[15], perm[16], perm[2]) == (15, 14, 17, 2)


def test_build_follows_the_config_switches() -> None:
    cfg = ParsingHeadConfig(enabled=True, conv_dim=32, aspp_dim=16)
    pss = build_parsing_branch(cfg, SHAPES)
    assert pss.in_features == ("p2",)
    assert pss.pooler.output_size == 32
    levels = build_parsing_branch(replace(cfg, pss=False, pooler_resolution=14), SHAPES)
    assert levels.in_features == ("p2", "p3", "p4", "p5")
    assert levels.pooler.output_size == 14
    mhp = build_parsing_branch(replace(cfg, dataset="mhp"), SHAPES)
    assert mhp.num_classes == MHP.num_classes == 59
    assert mhp.flip_permutation[22] == 23
    from densehuman.config import apply_overrides, parse_set

    with pytest.raises(ValueError, match=r"model\.parsing\.dataset"):
        apply_overrides(preset("parsing_rcnn_cpu"), parse_set(["model.parsing.dataset=lip"]))


def test_paper_parameter_count_and_two_branch_model() -> None:
    """Parsing R-CNN R-50-FPN has 54.5 M parameters (DensePoseFnL's table gives 54.56 M for its DensePose
    variant); the two-branch CPU model carries both heads."""
    model = build_model(preset("parsing_rcnn_r50_fpn").model)
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 54.51) < 0.05
    both = build_model(preset("densepose_parsing_rcnn_cpu").model)
    assert [b.name for b in both.extra_heads] == ["densepose", "parsing"]  # type: ignore[attr-defined]
