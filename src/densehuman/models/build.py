"""The one place a ``ModelConfig`` turns into modules."""

from __future__ import annotations

import torch

from densehuman.config import BackboneConfig, DensePoseHeadConfig, ModelConfig, ParsingHeadConfig
from densehuman.data.parsing_classes import DATASETS as PARSING_DATASETS
from densehuman.models.backbones import Backbone, ResNet, TimmBackbone
from densehuman.models.box_head import BoxHead
from densehuman.models.branches.densepose.branch import DensePoseBranch
from densehuman.models.branches.densepose.decoder import Decoder
from densehuman.models.branches.densepose.head import DeepLabHead, V1ConvXHead
from densehuman.models.branches.densepose.loss import DensePoseChartLoss
from densehuman.models.branches.densepose.predictor import ChartPredictor
from densehuman.models.branches.parsing.branch import ParsingBranch
from densehuman.models.branches.parsing.predictor import ParsingPredictor
from densehuman.models.detector import Detector
from densehuman.models.layers.conv import NormName
from densehuman.models.layers.gce import GCEHead
from densehuman.models.necks import FPN, BiFPN
from densehuman.models.poolers import RoIPooler
from densehuman.models.rpn import RPN

FPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")


def build_backbone(cfg: BackboneConfig) -> Backbone:
    if cfg.kind == "resnet":
        return ResNet(
            depth=cfg.depth,
            stem_out_channels=cfg.stem_out_channels,
            res2_out_channels=cfg.res2_out_channels,
            width_per_group=cfg.width_per_group,
            stride_in_1x1=cfg.stride_in_1x1,
            freeze_at=cfg.freeze_at,
        )
    if cfg.kind == "timm":
        if not cfg.timm_name:
            raise ValueError("model.backbone.timm_name is required when model.backbone.kind is 'timm'")
        return TimmBackbone(
            cfg.timm_name,
            pretrained=cfg.pretrained,
            freeze_bn=cfg.freeze_bn,
            feature_location=cfg.feature_location,
        )
    raise ValueError(f"model.backbone.kind must be 'resnet' or 'timm', got {cfg.kind!r}")


def _levels_pooler(
    in_features: tuple[str, ...], shapes: dict[str, tuple[int, int]], resolution: int, ratio: int, aligned: bool
) -> RoIPooler:
    return RoIPooler(resolution, [1.0 / shapes[f][1] for f in in_features], ratio, aligned)


def build_densepose_branch(cfg: DensePoseHeadConfig, shapes: dict[str, tuple[int, int]]) -> DensePoseBranch:
    in_features: tuple[str, ...] = ("p2", "p3", "p4", "p5")
    if cfg.pss and not cfg.decoder:
        in_features = ("p2",)
    channels = shapes[in_features[0]][0]
    strides = [shapes[f][1] for f in in_features]
    decoder = None
    if cfg.decoder:
        decoder = Decoder(
            in_features, [shapes[f][0] for f in in_features], strides, cfg.decoder_conv_dims, cfg.decoder_num_classes
        )
        pooler = RoIPooler(cfg.pooler_resolution, [1.0 / strides[0]], cfg.pooler_sampling_ratio, cfg.pooler_aligned)
        head_in = cfg.decoder_num_classes
    else:
        pooler = _levels_pooler(
            in_features, shapes, cfg.pooler_resolution, cfg.pooler_sampling_ratio, cfg.pooler_aligned
        )
        head_in = channels
    head: torch.nn.Module
    if cfg.head == "v1convx":
        head = V1ConvXHead(head_in, cfg.num_stacked_convs, cfg.conv_dim)
    elif cfg.head == "deeplab":
        head = DeepLabHead(head_in, cfg.num_stacked_convs, cfg.conv_dim, use_nonlocal=cfg.nonlocal_block)
    elif cfg.head == "gce":
        head = GCEHead(
            head_in,
            conv_dim=cfg.conv_dim,
            aspp_dim=cfg.aspp_dim,
            use_nonlocal=cfg.nonlocal_block,
            num_convs_after=cfg.num_stacked_convs,
            norm=_norm_name(cfg.norm, "model.densepose.norm"),
            nonlocal_ratio=cfg.nonlocal_ratio,
        )
    else:
        raise ValueError(f"model.densepose.head must be 'v1convx', 'deeplab' or 'gce', got {cfg.head!r}")
    if cfg.uv_confidence not in ("", "iid_iso", "indep_aniso"):
        raise ValueError(
            f"model.densepose.uv_confidence must be '', 'iid_iso' or 'indep_aniso', got {cfg.uv_confidence!r}"
        )
    if cfg.num_coarse_segm not in (2, 15):
        raise ValueError(f"model.densepose.num_coarse_segm must be 2 or 15, got {cfg.num_coarse_segm}")
    if cfg.heatmap_size != 2 * cfg.up_scale * cfg.pooler_resolution:
        raise ValueError(
            f"model.densepose.heatmap_size must be 2 x up_scale x pooler_resolution (deconv x2, upsample x up_scale), "
            f"got {cfg.heatmap_size} for {cfg.pooler_resolution} and up_scale {cfg.up_scale}"
        )
    predictor = ChartPredictor(
        cfg.conv_dim,
        num_coarse_segm_channels=cfg.num_coarse_segm,
        uv_confidence=cfg.uv_confidence or None,  # type: ignore[arg-type]
        segm_confidence=cfg.segm_confidence,
        segm_confidence_epsilon=cfg.confidence_epsilon,
        up_scale=cfg.up_scale,
    )
    loss = DensePoseChartLoss(
        part_weight=cfg.part_weight,
        index_weight=cfg.index_weight,
        point_regression_weight=cfg.point_regression_weight,
        uv_confidence=cfg.uv_confidence or None,  # type: ignore[arg-type]
        uv_confidence_epsilon=cfg.confidence_epsilon,
    )
    return DensePoseBranch(in_features, pooler, head, predictor, loss, decoder, cfg.fg_iou_threshold)


def _norm_name(value: str, key: str) -> NormName:
    if value not in ("", "GN"):
        raise ValueError(f"{key} must be '' or 'GN', got {value!r}")
    return "GN" if value == "GN" else ""


def build_parsing_branch(cfg: ParsingHeadConfig, shapes: dict[str, tuple[int, int]]) -> ParsingBranch:
    """Parsing R-CNN's branch: PSS (P2 only) or FPN-level pooling, the GCE head with PBD, the predictor."""
    classes = PARSING_DATASETS[cfg.dataset]
    in_features = ("p2",) if cfg.pss else ("p2", "p3", "p4", "p5")
    pooler = _levels_pooler(in_features, shapes, cfg.pooler_resolution, cfg.pooler_sampling_ratio, cfg.pooler_aligned)
    head = GCEHead(
        shapes["p2"][0],
        conv_dim=cfg.conv_dim,
        aspp_dim=cfg.aspp_dim,
        aspp=cfg.aspp,
        use_nonlocal=cfg.nonlocal_block,
        num_convs_before=cfg.num_convs_before,
        num_convs_after=cfg.num_convs_after,
        norm=_norm_name(cfg.norm, "model.parsing.norm"),
    )
    predictor = ParsingPredictor(cfg.conv_dim, classes.num_classes, cfg.output_size)
    return ParsingBranch(
        in_features,
        pooler,
        head,
        predictor,
        classes.flip_permutation().tolist(),
        loss_weight=cfg.loss_weight,
        fg_iou_threshold=cfg.fg_iou_threshold,
        rois_per_image=cfg.rois_per_image,
    )


def build_model(cfg: ModelConfig) -> Detector:
    """DensePose / Parsing R-CNN from its config (backbone -> FPN -> RPN -> box head -> the enabled branches)."""
    if cfg.input_format not in ("BGR", "RGB"):
        raise ValueError(f"model.input_format must be 'BGR' or 'RGB', got {cfg.input_format!r}")
    backbone = build_backbone(cfg.backbone)
    neck: FPN | BiFPN
    if cfg.fpn.kind == "bifpn":
        neck = BiFPN(backbone.output_shapes(), out_channels=cfg.fpn.out_channels)
    else:
        neck = FPN(backbone.output_shapes(), out_channels=cfg.fpn.out_channels)
    shapes = neck.output_shapes()
    levels = [f for f in FPN_LEVELS if f in shapes]
    r = cfg.rpn
    rpn = RPN(
        levels,
        cfg.fpn.out_channels,
        [shapes[f][1] for f in levels],
        anchor_sizes=[(s,) for s in r.anchor_sizes],
        aspect_ratios=(r.aspect_ratios,),
        batch_size_per_image=r.batch_size_per_image,
        positive_fraction=r.positive_fraction,
        pre_nms_topk=(r.pre_nms_topk_train, r.pre_nms_topk_test),
        post_nms_topk=(r.post_nms_topk_train, r.post_nms_topk_test),
        nms_thresh=r.nms_thresh,
        anchor_offset=r.anchor_offset,
    )
    b = cfg.box_head
    box_levels = ("p2", "p3", "p4", "p5")
    box_head = BoxHead(
        box_levels,
        cfg.fpn.out_channels,
        [shapes[f][1] for f in box_levels],
        num_classes=b.num_classes,
        pooler_resolution=b.pooler_resolution,
        sampling_ratio=b.pooler_sampling_ratio,
        aligned=b.pooler_aligned,
        fc_dim=b.fc_dim,
        num_fc=b.num_fc,
        num_conv=b.num_conv,
        conv_dim=b.conv_dim,
        batch_size_per_image=b.batch_size_per_image,
        positive_fraction=b.positive_fraction,
        score_threshold=b.score_thresh_test,
        nms_threshold=b.nms_thresh_test,
        detections_per_image=b.detections_per_image,
        class_agnostic=b.class_agnostic,
    )
    # The DensePose branch first: detectron2 checkpoints map onto ``extra_heads.0``.
    branches: list[torch.nn.Module] = []
    if cfg.densepose.enabled:
        branches.append(build_densepose_branch(cfg.densepose, shapes))
    if cfg.parsing.enabled:
        branches.append(build_parsing_branch(cfg.parsing, shapes))
    return Detector(
        backbone,
        neck,
        rpn,
        box_head,
        extra_heads=branches,  # type: ignore[arg-type]
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        input_format=cfg.input_format,
    )
