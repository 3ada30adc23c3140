"""Named presets: complete, frozen configurations. ``preset(name)`` returns one; YAML files override them.

The detectron2 model-zoo presets follow its configs (``Base-DensePose-RCNN-FPN.yaml`` and the per-model files);
the ``*_cpu`` presets are small models that train in minutes on a CPU for tests, demos and smoke runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from densehuman.config import (
    BackboneConfig,
    BoxHeadConfig,
    Config,
    DataConfig,
    DensePoseHeadConfig,
    FPNConfig,
    InputConfig,
    ModelConfig,
    ParsingHeadConfig,
    RPNConfig,
    SolverConfig,
)
from densehuman.models.zoo_mobile import MOBILE_PRESETS


def densepose_rcnn_r50_fpn() -> Config:
    """detectron2 ``densepose_rcnn_R_50_FPN_s1x``: V1ConvX head, decoder, 2-channel S, 112x112 heatmaps."""
    return Config(name="densepose_rcnn_r50_fpn")


def densepose_rcnn_r101_fpn() -> Config:
    """detectron2 ``densepose_rcnn_R_101_FPN_s1x``: the R-50 preset on a ResNet-101."""
    base = densepose_rcnn_r50_fpn()
    return replace(base, name="densepose_rcnn_r101_fpn", model=replace(base.model, backbone=BackboneConfig(depth=101)))


def densepose_rcnn_r50_fpn_legacy() -> Config:
    """The paper's model (detectron2 ``*_s1x_legacy``): no decoder, 14x14 pooler, 56x56 heatmaps, 15-channel S,
    loss weights 2.0 / 0.3 / 0.1, base LR 0.002."""
    base = densepose_rcnn_r50_fpn()
    head = DensePoseHeadConfig(
        decoder=False,
        pooler_resolution=14,
        heatmap_size=56,
        num_coarse_segm=15,
        index_weight=2.0,
        part_weight=0.3,
        point_regression_weight=0.1,
    )
    return replace(
        base,
        name="densepose_rcnn_r50_fpn_legacy",
        model=replace(base.model, densepose=head),
        solver=replace(base.solver, base_lr=0.002),
    )


def densepose_rcnn_r50_fpn_dl() -> Config:
    """DeepLab head (ASPP with GroupNorm), detectron2 ``densepose_rcnn_R_50_FPN_DL_s1x``."""
    base = densepose_rcnn_r50_fpn()
    head = replace(base.model.densepose, head="deeplab")
    return replace(base, name="densepose_rcnn_r50_fpn_dl", model=replace(base.model, densepose=head))


def _confidence(name: str, uv: str, segm: bool) -> Config:
    """The WC1 / WC2 (UV confidence) and M (segmentation confidence) variants: their configs lower the point
    regression weight to 0.0005, warm up from 0.025 and clip gradients."""
    base = densepose_rcnn_r50_fpn()
    head = replace(base.model.densepose, uv_confidence=uv, segm_confidence=segm, point_regression_weight=0.0005)
    solver = replace(base.solver, warmup_factor=0.025, clip_grad_norm=100.0 if segm else 0.0)
    return replace(base, name=name, model=replace(base.model, densepose=head), solver=solver)


def densepose_rcnn_r50_fpn_wc1() -> Config:
    """WC1: isotropic UV confidence (sigma_2), detectron2 ``densepose_rcnn_R_50_FPN_WC1_s1x``."""
    return _confidence("densepose_rcnn_r50_fpn_wc1", "iid_iso", False)


def densepose_rcnn_r50_fpn_wc2() -> Config:
    """WC2: anisotropic UV confidence (sigma_2, kappa_u, kappa_v), ``densepose_rcnn_R_50_FPN_WC2_s1x``."""
    return _confidence("densepose_rcnn_r50_fpn_wc2", "indep_aniso", False)


def densepose_rcnn_r50_fpn_wc1m() -> Config:
    """WC1M: WC1 plus segmentation confidences, ``densepose_rcnn_R_50_FPN_WC1M_s1x``."""
    return _confidence("densepose_rcnn_r50_fpn_wc1m", "iid_iso", True)


def densepose_rcnn_r50_fpn_wc2m() -> Config:
    """WC2M: WC2 plus segmentation confidences, ``densepose_rcnn_R_50_FPN_WC2M_s1x``."""
    return _confidence("densepose_rcnn_r50_fpn_wc2m", "indep_aniso", True)


def _cpu(name: str, timm_name: str, width: int) -> Config:
    """A small model for CPUs: a timm backbone, a narrow FPN and heads, small images, a short schedule."""
    model = ModelConfig(
        backbone=BackboneConfig(kind="timm", timm_name=timm_name),
        fpn=FPNConfig(out_channels=width),
        rpn=RPNConfig(pre_nms_topk_train=600, post_nms_topk_train=300, pre_nms_topk_test=300, post_nms_topk_test=100),
        box_head=BoxHeadConfig(fc_dim=2 * width, batch_size_per_image=128, detections_per_image=20),
        densepose=DensePoseHeadConfig(
            num_stacked_convs=4,
            conv_dim=width,
            decoder_conv_dims=width,
            decoder_num_classes=width,
            pooler_resolution=14,
            heatmap_size=56,
        ),
        input_format="RGB",
        pixel_mean=(123.675, 116.280, 103.530),
        pixel_std=(58.395, 57.120, 57.375),
    )
    return Config(
        name=name,
        model=model,
        input=InputConfig(min_size_train=(224, 256, 288), max_size_train=512, min_size_test=256, max_size_test=512),
        solver=SolverConfig(
            ims_per_batch=4,
            base_lr=0.01,
            warmup_iters=100,
            steps=(1500, 1800),
            max_iter=2000,
            checkpoint_period=500,
            clip_grad_norm=10.0,
        ),
        data=DataConfig(num_workers=2, eval_max_images=100),
    )


def densepose_rcnn_resnet18_cpu() -> Config:
    """CPU: timm resnet18 backbone, 64-channel FPN and heads, 56x56 heatmaps, short schedule."""
    return _cpu("densepose_rcnn_resnet18_cpu", "resnet18", 64)


def densepose_rcnn_mobilenetv3_cpu() -> Config:
    """CPU: timm mobilenetv3_large_100 backbone, 64-channel FPN and heads."""
    return _cpu("densepose_rcnn_mobilenetv3_cpu", "mobilenetv3_large_100", 64)


def densepose_rcnn_spnasnet_cpu() -> Config:
    """CPU: timm spnasnet_100 (Single-Path NAS, the fast-and-light paper's choice), 64-channel FPN and heads."""
    return _cpu("densepose_rcnn_spnasnet_cpu", "spnasnet_100", 64)


def densepose_rcnn_tiny_cpu() -> Config:
    """The smallest model: for tests (resnet18, 32-channel heads, 2 head convs)."""
    base = _cpu("densepose_rcnn_tiny_cpu", "resnet18", 32)
    head = replace(base.model.densepose, num_stacked_convs=2)
    return replace(base, model=replace(base.model, densepose=head))


# --- Parsing R-CNN (soeaver/Parsing-R-CNN ``cfgs/CIHP``, ``cfgs/MHP-v2``, ``cfgs/DensePose_COCO``) ----------------

# Detectron's (caffe2) BGR pixel means, which Parsing R-CNN's ImageNet ResNets expect.
_DETECTRON1_MEAN = (102.9801, 115.9465, 122.7717)


def parsing_rcnn_r50_fpn() -> Config:
    """Parsing R-CNN, the paper's CIHP model (``e2e_parsing_rcnn_R-50-FPN_1x``): PSS, 32x32 RoIs, GCE, 4 PBD
    convs, 128x128 logits; trained on CIHP folders (``data.format=cihp``), 45k iterations of 16 images."""
    base = densepose_rcnn_r50_fpn()
    model = replace(
        base.model,
        densepose=replace(base.model.densepose, enabled=False),
        parsing=ParsingHeadConfig(enabled=True),
        pixel_mean=_DETECTRON1_MEAN,
    )
    solver = SolverConfig(
        ims_per_batch=16,
        base_lr=0.02,
        warmup_iters=500,
        warmup_factor=0.01,
        steps=(30_000, 40_000),
        max_iter=45_000,
    )
    inputs = InputConfig(min_size_train=(512, 640, 704, 768, 800, 864), max_size_train=1400)
    return Config(
        name="parsing_rcnn_r50_fpn",
        model=model,
        input=inputs,
        solver=solver,
        data=DataConfig(format="cihp"),
    )


def parsing_rcnn_r50_fpn_mhp() -> Config:
    """Parsing R-CNN on MHP v2.0 (59 classes, 24k iterations, steps 15k / 20k)."""
    base = parsing_rcnn_r50_fpn()
    model = replace(base.model, parsing=replace(base.model.parsing, dataset="mhp"))
    solver = replace(base.solver, steps=(15_000, 20_000), max_iter=24_000)
    return replace(base, name="parsing_rcnn_r50_fpn_mhp", model=model, solver=solver, data=DataConfig(format="mhp"))


def densepose_parsing_rcnn_r50_fpn() -> Config:
    """DensePose with Parsing R-CNN's head (the COCO 2018 challenge winner, ``e2e_parsing_rcnn_R-50-FPN_s1x_ms``):
    every box pooled from P2 at 32x32, the GCE head with 4 convs after it, 128x128 outputs, 15-channel S, loss
    weights 2.0 / 0.3 / 0.1, base LR 0.002."""
    base = densepose_rcnn_r50_fpn()
    head = DensePoseHeadConfig(
        head="gce",
        nonlocal_block=True,
        num_stacked_convs=4,
        decoder=False,
        pss=True,
        pooler_resolution=32,
        heatmap_size=128,
        num_coarse_segm=15,
        index_weight=2.0,
        part_weight=0.3,
        point_regression_weight=0.1,
    )
    model = replace(base.model, densepose=head, pixel_mean=_DETECTRON1_MEAN)
    inputs = InputConfig(min_size_train=(512, 640, 704, 768, 800, 864), max_size_train=1400)
    solver = replace(base.solver, base_lr=0.002)
    return replace(base, name="densepose_parsing_rcnn_r50_fpn", model=model, input=inputs, solver=solver)


def _parsing_cpu(name: str, densepose: bool) -> Config:
    """CPU-sized Parsing R-CNN trained from scratch: the resnet18 CPU detector, a 64-channel GCE head with
    GroupNorm in every convolution (no ImageNet weights to start from), 64x64 logits, 8 RoIs per image (the 32x32
    head dominates a CPU iteration: 16 RoIs of 4 images make it 5 s)."""
    base = _cpu(name, "resnet18", 64)
    parsing = ParsingHeadConfig(enabled=True, aspp_dim=64, conv_dim=64, norm="GN", output_size=64, rois_per_image=8)
    dp = replace(base.model.densepose, enabled=densepose)
    return replace(
        base,
        model=replace(base.model, densepose=dp, parsing=parsing),
        data=replace(base.data, format="densepose_coco" if densepose else "cihp"),
    )


def parsing_rcnn_cpu() -> Config:
    """CPU: Parsing R-CNN from scratch on a CIHP folder (or a synthetic dataset's): resnet18, 64-channel heads."""
    return _parsing_cpu("parsing_rcnn_cpu", densepose=False)


def densepose_parsing_rcnn_cpu() -> Config:
    """CPU: one model with both branches (DensePose and parsing), trained on a synthetic dataset's two labels."""
    return _parsing_cpu("densepose_parsing_rcnn_cpu", densepose=True)


PRESETS: dict[str, Callable[[], Config]] = {
    f.__name__: f
    for f in (
        densepose_rcnn_r50_fpn,
        densepose_rcnn_r101_fpn,
        densepose_rcnn_r50_fpn_legacy,
        densepose_rcnn_r50_fpn_dl,
        densepose_rcnn_r50_fpn_wc1,
        densepose_rcnn_r50_fpn_wc2,
        densepose_rcnn_r50_fpn_wc1m,
        densepose_rcnn_r50_fpn_wc2m,
        densepose_rcnn_resnet18_cpu,
        densepose_rcnn_mobilenetv3_cpu,
        densepose_rcnn_spnasnet_cpu,
        densepose_rcnn_tiny_cpu,
        parsing_rcnn_r50_fpn,
        parsing_rcnn_r50_fpn_mhp,
        densepose_parsing_rcnn_r50_fpn,
        parsing_rcnn_cpu,
        densepose_parsing_rcnn_cpu,
        *MOBILE_PRESETS,
    )
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
