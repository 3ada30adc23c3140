"""Batch norms folded into the convolutions before them, for inference (``prepare_for_inference``).

timm's efficient-net family (EfficientNet, MobileNetV3, MnasNet, FBNet, Single-Path NAS, MixNet, ...) runs every
convolution through a batch norm (``BatchNormAct2d`` / ``FrozenBatchNormAct2d``: a scale and a shift, then the
activation), and the BiFPN's separable blocks do the same. At inference the scale and shift are constants, so they
go into the convolution's weight and bias, and the norm module is replaced by its activation: two passes over each
feature map fewer (a third of Mobile Parsing R-CNN (B)'s backbone time at 800 px on a 2-core CPU).

Pairs are taken from the blocks' own ``forward`` order (the table below, checked against timm's code: in each
pair the norm is applied right after the convolution, to its output only), never guessed from names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# block class name -> (convolution, norm) attribute pairs, in the order the block's forward applies them
FOLDABLE_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "EfficientNetFeatures": (("conv_stem", "bn1"),),
    "MobileNetV3Features": (("conv_stem", "bn1"),),
    "DepthwiseSeparableConv": (("conv_s2d", "bn_s2d"), ("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_s2d", "bn_s2d"), ("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    "EdgeResidual": (("conv_exp", "bn1"), ("conv_pwl", "bn2")),
    "ConvBnAct": (("conv", "bn1"),),
    "SeparableConvBlock": (("pointwise", "bn"),),  # densehuman's BiFPN block
}
NORM_KINDS = ("BatchNorm2d", "FrozenBatchNorm2d", "BatchNormAct2d", "FrozenBatchNormAct2d")


def _scale_shift(norm: nn.Module) -> tuple[Tensor, Tensor]:
    """The norm at inference as ``x * scale + shift`` per channel."""
    weight = getattr(norm, "weight", None)
    bias = getattr(norm, "bias", None)
    mean, var = norm.running_mean, norm.running_var
    eps = float(getattr(norm, "eps", 1e-5))
    if not isinstance(mean, Tensor) or not isinstance(var, Tensor):
        raise ValueError(f"{type(norm).__name__} has no running statistics to fold")
    scale = torch.rsqrt(var.float() + eps)
    if isinstance(weight, Tensor):
        scale = scale * weight.float()
    shift = -mean.float() * scale
    if isinstance(bias, Tensor):
        shift = shift + bias.float()
    return scale, shift


def _after_norm(norm: nn.Module) -> nn.Module:
    """What remains of the norm once folded: timm's activation (its dropout is the identity at inference)."""
    act = getattr(norm, "act", None)
    return act if isinstance(act, nn.Module) else nn.Identity()


@torch.no_grad()
def fold_into(conv: nn.Conv2d, norm: nn.Module) -> None:
    """``norm(conv(x)) == conv'(x)``: the norm's scale and shift moved into ``conv``'s weight and bias."""
    scale, shift = _scale_shift(norm)
    dtype = conv.weight.dtype
    conv.weight.copy_((conv.weight.float() * scale.view(-1, 1, 1, 1)).to(dtype))
    if conv.bias is not None:
        shift = shift + conv.bias.float() * scale
        conv.bias.copy_(shift.to(dtype))
    else:
        conv.bias = nn.Parameter(shift.to(dtype), requires_grad=False)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every foldable (convolution, batch norm) pair of ``model`` in place (call it in eval mode, weights
    loaded); returns how many. The model is for inference afterwards: training would train the folded weights
    without their norms."""
    if model.training:
        raise ValueError("fold batch norms of a model in eval mode (norms use running statistics only there)")
    folded = 0
    for module in list(model.modules()):
        for conv_name, norm_name in FOLDABLE_PAIRS.get(type(module).__name__, ()):
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if not isinstance(conv, nn.Conv2d):
                continue  # absent (conv_s2d is None in most blocks), or a CondConv that mixes weights per image
            if norm is None or type(norm).__name__ not in NORM_KINDS:
                continue  # already folded, or another norm (GroupNorm cannot be folded)
            fold_into(conv, norm)
            setattr(module, norm_name, _after_norm(norm))
            folded += 1
    return folded
