"""Batch norms folded into convolutions: the same features, fewer passes; nothing folded that should not be."""

from __future__ import annotations

import pytest
import torch

from densehuman.models.build import build_model
from densehuman.models.fold_norms import NORM_KINDS, fold_batch_norms
from densehuman.models.zoo import preset
from densehuman.numerics import assert_float32_close

pytestmark = pytest.mark.numerics


def _randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Statistics and affine parameters of a trained model (not the identity), so folding has work to do."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ in NORM_KINDS:
                n = m.running_mean.numel()
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)


@pytest.mark.parametrize(
    ("name", "timm_name"),
    [("mobile_parsing_rcnn_b", None), ("mobile_parsing_rcnn_b_cpu", None), ("mobile_parsing_rcnn_a", "efficientnet_b0"),
     ("mobile_parsing_rcnn_a", "tf_mobilenetv3_small_100"), ("mobile_parsing_rcnn_a", "mixnet_s")],
)  # fmt: skip
def test_folded_backbone_and_neck_give_the_same_maps(name: str, timm_name: str | None) -> None:
    from dataclasses import replace

    model_config = preset(name).model
    if timm_name is not None:
        model_config = replace(model_config, backbone=replace(model_config.backbone, timm_name=timm_name))
    torch.manual_seed(0)
    model = build_model(model_config).eval()
    _randomize_norms(model)
    norms = [m for m in [*model.backbone.modules(), *model.neck.modules()] if type(m).__name__ in NORM_KINDS]
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        want = model.neck(model.backbone(x))
        folded = fold_batch_norms(model)
        got = model.neck(model.backbone(x))
    left = [m for m in [*model.backbone.modules(), *model.neck.modules()] if type(m).__name__ in NORM_KINDS]
    assert folded == len(norms) - len(left) > 0
    if timm_name != "mixnet_s":  # MixNet's mixed-kernel convolutions (not nn.Conv2d) keep their norms
        assert not left, f"{len(left)} norms not folded: {sorted({type(m).__name__ for m in left})}"
    for key in want:
        assert_float32_close(got[key], want[key], reduction_length=9 * 1152, depth=60, what=f"{name} {key}")
    assert fold_batch_norms(model) == 0  # a second call finds nothing


def test_a_wrong_fold_is_caught_and_training_mode_is_refused() -> None:
    torch.manual_seed(0)
    model = build_model(preset("mobile_parsing_rcnn_b").model)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model)
    model.eval()
    _randomize_norms(model)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        want = model.neck(model.backbone(x))
        fold_batch_norms(model)
        block = model.backbone.body.blocks[1][0]
        block.conv_dw.bias[0] += 0.01  # one channel's shift off by 0.01: the comparison must notice
        got = model.neck(model.backbone(x))
    with pytest.raises(AssertionError):
        assert_float32_close(got["p2"], want["p2"], reduction_length=9 * 1152, depth=60, what="p2")
