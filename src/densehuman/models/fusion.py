"""Inference-only preparation of a :class:`Detector`: the same outputs (up to float32 rounding), less CPU time.

``prepare_for_inference(model)`` changes a model in place, after its weights are loaded (measured on 2 CPU cores,
full-size R-50 FPN model on an 800x1067 image with 10 detections: 5.1 s -> 2.2 s per image end to end):

- the batch norms of timm's efficient-net family backbones and of the BiFPN are folded into their convolutions
  (``densehuman.models.fold_norms``);
- every ``ConvNorm`` of the ResNet folds its FrozenBatchNorm into the convolution (``weight * scale`` and a
  ``bias``), and the ResNet runs in channels-last memory with oneDNN's fused convolution + ReLU and convolution +
  residual addition + ReLU (written into the shortcut's buffer: on a CPU, page-faulting a fresh stride-4 map costs
  as much as computing the addition);
- 3x3 stride-1 convolutions after the backbone (FPN outputs, RPN, DensePose decoder and head) run as Winograd
  convolutions (NNPACK's, through PyTorch's ``_nnpack_spatial_convolution``) where PyTorch has NNPACK: about a
  third of the multiplications of oneDNN's direct convolution. A batch of RoIs is stacked into one tall image with
  zero rows between the RoIs, which is the same as convolving each RoI with its own zero padding. NNPACK works in
  NCHW, so the 1x1 convolutions there run as matrix products with NCHW outputs;
- the RoI poolers gather with ``F.embedding_bag`` (``roi_align_gather``) instead of torchvision's ``roi_align``,
  whose CPU kernel visits every channel plane separately;
- the DensePose decoder runs only on the windows of its stride-4 map that the RoI pooler reads (around the
  detections), and the chart predictor's transposed convolutions run as one.

Outputs agree with the unprepared model up to float32 rounding (relative differences around 1e-5 on the features;
Winograd transforms round a little more than direct convolutions). A prepared model is for inference only:
``model.train()`` raises, and its ``state_dict`` has folded convolutions instead of detectron2's norm buffers, so it
must not be saved as a checkpoint. Everything falls back to the plain PyTorch path on other devices, other dtypes,
with autograd on, or where NNPACK or oneDNN's fused operators are missing.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from densehuman.models.backbones import ConvNorm, ResNet
from densehuman.models.branches.densepose.branch import DensePoseBranch
from densehuman.models.branches.densepose.predictor import ChartPredictor
from densehuman.models.detector import Detector
from densehuman.models.fold_norms import fold_batch_norms
from densehuman.models.poolers import RoIPooler

# Below about this many output pixels per call NNPACK's per-call weight transform costs more than it saves
# (measured on 2 AMD EPYC cores for 256 and 512 channels).
MIN_WINOGRAD_PIXELS = 1536


@functools.cache
def nnpack_available() -> bool:
    """Whether this PyTorch has a working NNPACK (initializing it: ``_nnpack_spatial_convolution`` fails on every
    call until ``torch._nnpack_available()`` has run once)."""
    try:
        return bool(torch.backends.nnpack.is_available())
    except (AttributeError, RuntimeError):
        return False


def winograd_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` for an odd square kernel with "same" padding (stride 1, no
    dilation, one group), as NNPACK's Winograd/FFT convolution when it can run it: float32 on the CPU without
    autograd. Otherwise (CUDA, other dtypes, gradients needed) it is ``F.conv2d``.

    NNPACK convolves one image per call (the weight transform is redone on every call), so a batch (N, C, H, W)
    is stacked into one (1, C, N * (H + padding), W) image with ``padding`` zero rows after every image: each
    image then sees zeros above and below it, as with its own zero padding, and the rows computed across the gaps
    are dropped. Returns (N, C_out, H, W) (a strided view when N > 1).
    """
    usable = (
        x.dim() == 4
        and x.shape[0] * (x.shape[2] + padding) * x.shape[3] >= MIN_WINOGRAD_PIXELS
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and nnpack_available()
    )
    if not usable:
        return F.conv2d(x, weight, bias, padding=padding)
    n, channels, height, width = x.shape
    if n == 1:
        return torch._nnpack_spatial_convolution(x, weight, bias, [padding, padding])
    stacked = F.pad(x, (0, 0, 0, padding)).transpose(0, 1).reshape(1, channels, n * (height + padding), width)
    out = torch._nnpack_spatial_convolution(stacked, weight, bias, [padding, padding])
    return out[0].view(-1, n, height + padding, width)[:, :, :height].transpose(0, 1)


def pointwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """A 1x1 convolution as one matrix product per image, with a contiguous NCHW output whatever the input's
    layout (a channels-last input is read transposed by the BLAS, without a copy).

    After NNPACK's NCHW outputs this beats oneDNN, which reorders NCHW inputs to its blocked layout and back (the
    RPN's objectness and delta layers, the decoder's predictor), and it gives NCHW maps to the NNPACK
    convolutions that follow the FPN's lateral layers.
    """
    if x.device.type != "cpu" or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return F.conv2d(x, weight, bias, stride=stride)
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    n, channels, height, width = x.shape
    w = weight.reshape(weight.shape[0], channels)
    out = x.new_empty((n, weight.shape[0], height * width))
    for k in range(n):
        # (C_in, H * W) view of image k: contiguous rows for NCHW, a transposed (H * W, C_in) matrix for NHWC
        columns = x[k].reshape(channels, height * width)
        if bias is None:
            torch.mm(w, columns, out=out[k])
        else:
            torch.addmm(bias[:, None], w, columns, out=out[k])
    return out.view(n, weight.shape[0], height, width)  # (no -1: n may be 0, a branch with no RoI)


def _pointwise_candidate(conv: nn.Conv2d) -> bool:
    return (
        conv.kernel_size == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.stride[0] == conv.stride[1]
    )


def _winograd_candidate(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size[0]
    return (
        conv.kernel_size == (k, k)
        and k % 2 == 1
        and 3 <= k <= 15  # 1x1: oneDNN is faster
        and conv.padding == (k // 2, k // 2)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def use_winograd(conv: nn.Conv2d) -> None:
    """Route ``conv`` through :func:`winograd_conv2d` (an instance override of ``nn.Conv2d._conv_forward``, which
    ``forward`` calls; subclasses such as ``ConvNorm`` and ``Conv2dNorm`` keep their own norm and activation)."""
    if not _winograd_candidate(conv):
        raise ValueError(f"{conv} is not a stride-1 'same' convolution with an odd square kernel")
    padding = conv.padding[0]
    assert isinstance(padding, int)  # _winograd_candidate
    conv._conv_forward = functools.partial(winograd_conv2d, padding=padding)  # type: ignore[method-assign]


def _cpu_inference(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()


@functools.cache
def mkldnn_fusion_available() -> bool:
    """Whether oneDNN's fused operators (``torch.ops.mkldnn._convolution_pointwise``, which PyTorch's compiler
    uses) exist and run here."""
    try:
        x = torch.ones(1, 1, 2, 2)
        w = torch.ones(1, 1, 1, 1)
        with torch.no_grad():
            y = _conv_relu_raw(x, w, None, [0, 0], [1, 1], [1, 1], 1)
            _conv_add_relu_raw(torch.ones_like(x), y, w, None, [0, 0], [1, 1], [1, 1], 1)
        return True
    except (AttributeError, RuntimeError):
        return False


Ints = list[int]


def _conv_relu_raw(
    x: Tensor, w: Tensor, b: Tensor | None, padding: Ints, stride: Ints, dilation: Ints, groups: int
) -> Tensor:
    op = torch.ops.mkldnn._convolution_pointwise
    return op(x, w, b, padding, stride, dilation, groups, "relu", [], None)


def _conv_add_relu_raw(
    other: Tensor, x: Tensor, w: Tensor, b: Tensor | None, padding: Ints, stride: Ints, dilation: Ints, groups: int
) -> Tensor:
    op = torch.ops.mkldnn._convolution_pointwise_.binary
    return op(other, x, w, b, padding, stride, dilation, groups, "add", 1.0, "relu", [], None)


def _geometry(conv: nn.Conv2d) -> tuple[Ints, Ints, Ints, int]:
    return [int(p) for p in conv.padding], list(conv.stride), list(conv.dilation), conv.groups


def _conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))`` in one oneDNN call (``conv`` folded: its norm is the identity)."""
    return _conv_relu_raw(x, conv.weight, conv.bias, *_geometry(conv))


def _conv_add_relu_(conv: nn.Conv2d, x: Tensor, other: Tensor) -> Tensor:
    """``other = relu(conv(x) + other)`` in place, in one oneDNN call (``conv`` folded)."""
    return _conv_add_relu_raw(other, x, conv.weight, conv.bias, *_geometry(conv))


def fused_resnet_forward(net: ResNet, x: Tensor) -> dict[str, Tensor]:
    """``ResNet.forward`` of a folded ResNet with fused oneDNN operators (CPU float32 inference; anything else
    takes ``ResNet.forward``). A block's residual sum is written into its shortcut's output, or into its input
    when the shortcut is the identity: that input is then the previous block's output, used nowhere else (a
    stage's first block has a projection shortcut, so stage outputs are never overwritten)."""
    if not _cpu_inference(x) or x.dim() != 4:
        return ResNet.forward(net, x)
    outputs = {}
    x = F.max_pool2d(_conv_relu(net.stem.conv1, x), kernel_size=3, stride=2, padding=1)
    for name in net.stage_names:
        stage = getattr(net, name)
        for index, block in enumerate(stage):
            out = _conv_relu(block.conv2, _conv_relu(block.conv1, x))
            # an identity shortcut sums into the block's input, except into the stage's input
            other = block.shortcut(x) if block.shortcut is not None else x if index > 0 else x.clone()
            x = _conv_add_relu_(block.conv3, out, other)
        if name in net.out_features:
            outputs[name] = x
    return outputs


def prepare_for_inference(
    model: Detector,
    *,
    channels_last: bool = True,
    fused_backbone: bool = True,
    winograd: bool = True,
    gather_pooling: bool = True,
    decode_regions: bool = True,
) -> Detector:
    """Make ``model`` faster for inference, in place, after its weights are loaded (and after moving it to its
    device); returns it, in eval mode. Each step is described in the module docstring.

    Args:
        model: the detector; a second call on a prepared model does nothing.
        channels_last: keep the backbone's convolution weights channels-last, so oneDNN runs it in NHWC.
        fused_backbone: a ResNet backbone runs :func:`fused_resnet_forward` (where oneDNN's fused operators run).
        winograd: 3x3 stride-1 convolutions after the backbone run :func:`winograd_conv2d` and 1x1 convolutions
            there :func:`pointwise_conv2d` (where NNPACK runs).
        gather_pooling: RoIAlign by ``roi_align_gather`` (CPU, sampling ratio > 0).
        decode_regions: the DensePose decoder computes only the windows the RoI pooler reads.

    The frozen batch norms (and timm's and the BiFPN's batch norms) are always folded. The model is for inference
    only afterwards: ``train()`` raises, and its ``state_dict`` (folded convolutions, no norm buffers) is not a
    checkpoint.
    """
    if model.inference_only:
        return model
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    fold_batch_norms(model)
    for module in model.modules():
        if isinstance(module, ConvNorm):
            module.fold_norm()
        elif isinstance(module, RoIPooler):
            module.gather = gather_pooling and model.device.type == "cpu"
        elif isinstance(module, DensePoseBranch):
            module.decode_regions = decode_regions
        elif isinstance(module, ChartPredictor):
            module.fuse_layers()
    if gather_pooling and model.device.type == "cpu":
        # the RoI heads gather rows of channels-last maps and give channels-last RoI features
        model.pooling_memory_format = torch.channels_last
        model.box_head.head.read_channels_last()
    if channels_last:
        for module in model.backbone.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    if fused_backbone and isinstance(model.backbone, ResNet) and mkldnn_fusion_available():
        model.backbone.forward = functools.partial(fused_resnet_forward, model.backbone)  # type: ignore[method-assign]
    if winograd and nnpack_available():
        heads = [model.neck, model.rpn, model.box_head, *model.extra_heads]
        for module in (m for head in heads if head is not None for m in head.modules()):
            if isinstance(module, nn.Conv2d) and _winograd_candidate(module):
                use_winograd(module)
            elif isinstance(module, nn.Conv2d) and _pointwise_candidate(module):
                module._conv_forward = functools.partial(  # type: ignore[method-assign]
                    pointwise_conv2d, stride=module.stride[0]
                )
    model.inference_only = True
    return model
