"""Presets of "Making DensePose fast and light" (zetyquickly/DensePoseFnL; the paper's Table 1 and 3).

- ``mobile_parsing_rcnn_a``: Single-Path NAS (``spnasnet_100``) backbone, FPN 256, the conv box head (2 convs, no
  FC), every box pooled from P2 at 32 x 32 (RoIAlignV2, adaptive sampling), ASPP + 4 convolutions without the
  non-local block, 256 channels, 64 x 64 outputs (no upsampling after the deconvolutions);
- ``mobile_parsing_rcnn_b``: the same with one BiFPN layer over the expansion features and 64 channels in the neck
  and every head (3.34 M parameters; the paper: 3.35 M), trained 3x (390k iterations, steps at 330k and 370k);
- ``mobile_parsing_rcnn_b_test_tuned``: (B) tested at 512 px with 100 proposals per FPN level before and after
  the RPN's NMS and a box NMS of 0.3 (the paper's "test-tuned" settings);
- ``mobile_parsing_rcnn_b_cpu``: (B) for training from scratch on a CPU (trainable batch norms, GroupNorm in the
  DensePose head, small images, a short schedule), with a parsing branch of the same width.

The ImageNet presets expect timm's pretrained weights (``model.backbone.pretrained=true`` where they can be
downloaded) and keep the backbone's batch norms frozen, as DensePoseFnL does.
"""

from __future__ import annotations

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

TIMM_MEAN = (123.675, 116.280, 103.530)  # RGB, timm's ImageNet normalization on a 0..255 scale
TIMM_STD = (58.395, 57.120, 57.375)


def mobile_model(
    width: int, neck: str, feature_location: str, backbone: str = "spnasnet_100", freeze_bn: bool = True
) -> ModelConfig:
    """A Mobile Parsing R-CNN of ``width`` channels in the neck and heads (the paper's Table 3 rows)."""
    return ModelConfig(
        backbone=BackboneConfig(
            kind="timm", timm_name=backbone, feature_location=feature_location, freeze_bn=freeze_bn
        ),
        fpn=FPNConfig(out_channels=width, kind=neck),
        rpn=RPNConfig(pre_nms_topk_train=2000, pre_nms_topk_test=1000),
        box_head=BoxHeadConfig(
            num_fc=0, num_conv=2, conv_dim=width, pooler_aligned=True, pooler_sampling_ratio=0,
            batch_size_per_image=32,
        ),
        densepose=DensePoseHeadConfig(
            head="gce",
            nonlocal_block=False,
            aspp_dim=width,
            conv_dim=width,
            num_stacked_convs=4,
            decoder=False,
            pss=True,
            pooler_resolution=32,
            pooler_aligned=True,
            pooler_sampling_ratio=0,
            up_scale=1,
            heatmap_size=64,
        ),
        input_format="RGB",
        pixel_mean=TIMM_MEAN,
        pixel_std=TIMM_STD,
    )  # fmt: skip


def mobile_parsing_rcnn_a() -> Config:
    """Mobile Parsing R-CNN (A): spnasnet_100, FPN 256, conv box head, ASPP + 4 convs, P2 32x32 (11.93 M)."""
    return Config(
        name="mobile_parsing_rcnn_a",
        model=mobile_model(256, "fpn", ""),
        input=InputConfig(min_size_train=(512, 864)),
        solver=SolverConfig(base_lr=0.002),
    )


def mobile_parsing_rcnn_b() -> Config:
    """Mobile Parsing R-CNN (B s3x): one BiFPN layer over the expansion features, 64 channels (3.34 M)."""
    return Config(
        name="mobile_parsing_rcnn_b",
        model=mobile_model(64, "bifpn", "expansion"),
        input=InputConfig(min_size_train=(512, 864)),
        solver=SolverConfig(base_lr=0.002, steps=(330_000, 370_000), max_iter=390_000),
    )


def mobile_parsing_rcnn_b_test_tuned() -> Config:
    """(B) with the paper's test-time settings: 512 px, 100 proposals per level, box NMS 0.3."""
    base = mobile_parsing_rcnn_b()
    model = replace(
        base.model,
        rpn=replace(base.model.rpn, pre_nms_topk_test=100, post_nms_topk_test=100),
        box_head=replace(base.model.box_head, nms_thresh_test=0.3),
    )
    inputs = replace(base.input, min_size_test=512, max_size_test=853)
    return replace(base, name="mobile_parsing_rcnn_b_test_tuned", model=model, input=inputs)


def mobile_parsing_rcnn_b_cpu() -> Config:
    """(B) trained from scratch on a CPU: trainable batch norms, GroupNorm in the heads, a 64-channel parsing
    branch beside the DensePose one, 256 px images."""
    model = mobile_model(64, "bifpn", "expansion", freeze_bn=False)
    model = replace(
        model,
        densepose=replace(model.densepose, norm="GN"),
        parsing=ParsingHeadConfig(
            enabled=True, aspp_dim=64, conv_dim=64, norm="GN", output_size=64, nonlocal_block=False,
            rois_per_image=8,
        ),
        box_head=replace(model.box_head, batch_size_per_image=128, detections_per_image=20),
        rpn=RPNConfig(pre_nms_topk_train=600, post_nms_topk_train=300, pre_nms_topk_test=300, post_nms_topk_test=100),
    )  # fmt: skip
    return Config(
        name="mobile_parsing_rcnn_b_cpu",
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


MOBILE_PRESETS = (
    mobile_parsing_rcnn_a,
    mobile_parsing_rcnn_b,
    mobile_parsing_rcnn_b_test_tuned,
    mobile_parsing_rcnn_b_cpu,
)
